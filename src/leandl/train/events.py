"""Training events: the points of the loop where techniques run.

The loop, with each event where it fires::

    fit_start
    for epoch in range(start_epoch, epochs):
        epoch_start
        for inputs, targets, indices in train_loader:
            batch_start                 # may set state.skip_batch (no forward/backward/step)
            outputs = model(inputs)
            after_forward               # e.g. run a teacher under no_grad
            before_loss                 # revise state.targets_soft, set state.sample_weights
            loss = weighted mean of loss_fn(outputs, targets_soft)
            after_loss                  # add terms with state.add_loss_term(name, value)
            loss.backward()
            after_backward              # edit gradients (sparsity subgradients, rescaling)
            clip gradients
            before_step
            optimizer.step()
            after_step                  # re-apply pruning masks
            batch_end                   # always fires, also for skipped batches
        epoch_end                       # SWA averaging, early-bird mask distance, schedules
        evaluate -> eval_end
    fit_end                             # swap SWA weights in, fold masks, convert QAT
"""

from __future__ import annotations

from enum import Enum

__all__ = ["Event", "EVENTS"]


class Event(str, Enum):
    """One point in the training loop; the value is the technique method name."""

    FIT_START = "fit_start"
    EPOCH_START = "epoch_start"
    BATCH_START = "batch_start"
    AFTER_FORWARD = "after_forward"
    BEFORE_LOSS = "before_loss"
    AFTER_LOSS = "after_loss"
    AFTER_BACKWARD = "after_backward"
    BEFORE_STEP = "before_step"
    AFTER_STEP = "after_step"
    BATCH_END = "batch_end"
    EPOCH_END = "epoch_end"
    EVAL_END = "eval_end"
    FIT_END = "fit_end"


EVENTS: tuple[Event, ...] = tuple(Event)
