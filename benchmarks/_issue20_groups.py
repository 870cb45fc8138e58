"""The row groups of ``issue20_existing.py`` and the findings written after reading their numbers.

Probes quoted in the findings (seed 0, run separately, not rows): the width-32 teacher's train
accuracy (1.0), the width-8 student's train accuracy (0.94), the fraction of units MaxDropout
zeroes, and DI's value relative to its bound at each BatchNorm output.
"""

from __future__ import annotations

from _issue20_distill import GROUPS as _DISTILL
from _issue20_prune import GROUPS as _PRUNE
from _issue20_train import GROUPS as _TRAIN

GROUPS = {**_PRUNE, **_DISTILL, **_TRAIN}

FINDINGS: dict[str, str] = {
    "lottery": (
        "positive for rewinding and Scratch-B: at 30 % MACs, lottery rewinding to the 1-epoch weights (+1.7 +- 1.0 "
        "points) and Scratch-B (24 epochs, +2.3 +- 1.2) beat fine-tuning the pruned weights at lr 3e-4; Scratch-E "
        "(same 12 epochs from a fresh init) is level with fine-tuning (-0.5 +- 1.4), the 'Rethinking' result: the "
        "pruned architecture, not the inherited weights, carries the accuracy."),
    "oskd": (
        "null (-0.3 +- 0.8 points): same-class nearest-neighbour self-distillation neither helps nor hurts the "
        "width-8 student, which is capacity-bound here (94 % train accuracy, probe on seed 0): pulling a sample "
        "towards its subclass neighbours regularises, and an underfitting model has nothing to gain from that; "
        "the paper's gains are on over-parameterised CIFAR models."),
    "ffl": (
        "positive: each FFL peer beats the same student trained alone (peer 1, same init: +3.4 +- 1.2 points; "
        "peer 2 0.901) and the fused classifier reaches 0.931 vs 0.844, in the paper's direction."),
    "dlad": (
        "positive: with three non-IID specialist teachers, DLAD-style per-sample confidence weighting beats fixed "
        "uniform weights by +3.2 +- 1.9 points (pure soft targets). Both stay well below a student trained on the "
        "labels (0.936): each teacher saw 4 home classes + 10 % of the rest, so the mixture is a weak target; the "
        "confidence here is the teacher's max softmax probability, not DLAD's trained discriminator."),
    "inline_collaboration": (
        "null (mean exit accuracy +0.0 +- 0.8 points): feeding exit k-1's logits into exit k does not change any "
        "exit by more than its seed spread at 10 epochs of joint SGD training; IMTA reports it mainly together with "
        "GE and one-for-all KD on MSDNet, where early exits are far weaker than the last one."),
    "ddi_halt": (
        "positive: under the same hard batch budget (50 % of the backbone's MACs per sample, 600 samples as one "
        "batch) the static policy can only afford exit 1 for everyone (0.682, 15 % of the budget spent), while "
        "halting with val-calibrated confidence thresholds sends confident samples out early and spends the savings "
        "on the rest: 0.898 (+21.6 +- 0.4 points), 91 % of the budget spent, never over it. Python-level loop, "
        "MACs by the cost table; no wall-clock claim."),
    "norm_loss": (
        "null: norm loss (lambda 1e-3 or 1e-2, no weight decay), weight decay 5e-4 and no regulariser at all land "
        "within 0.3 points of each other. In this BatchNorm CNN every conv filter is followed by BN, so the filter "
        "scale does not change the function: weight decay and norm loss act only through the effective learning "
        "rate, and 15 epochs of SGD on MNIST-1D do not expose a difference."),
    "soft_root_sign": (
        "positive where the paper claims it (deep nets): in a 6 x 128 MLP under SGD, SRS beats ReLU by +3.6 +- 1.1 "
        "points; in the 3-layer MLP the two are level (-0.2). Note the 6-layer nets are worse than 3-layer ones "
        "here (MNIST-1D MLPs overfit; the depth only exposes the activation's trainability)."),
    "pseudo_label": (
        "positive: under 40 % symmetric label noise, Lee's pseudo-label (alpha ramping to 3 between 20 % and 60 % "
        "of training) lifts clean test accuracy from 0.559 to 0.642 (+8.3 +- 1.9 points); with a 0.9 confidence "
        "threshold it uses few pseudo-labels while noisy and falls back to plain CE (+0.8 +- 1.3)."),
    "gradient_equilibrium": (
        "negative, explained: with SGD, GE multiplies every gradient reaching segment k by 1/(K-k) (a per-segment "
        "step-size cut: 1/4, 1/3, 1/2, 1 here), so at the same lr early segments learn 2-4x slower; exit 1 loses "
        "7.4 points and the mean 3.7. Doubling the lr recovers GE to +1.0 over the plain sum at the base lr, but "
        "the plain sum at the doubled lr is better still (+2.6): at this scale the summed gradients are not "
        "harmful, so 'equilibrium' only costs step size. Under Adam GE is an exact no-op (constant per-parameter "
        "gradient scale), which leandl now refuses with a ConfigError naming the optimizer field."),
    "one_for_all_kd": (
        "null for the mean: gamma 0.1 (the built-in default) moves no exit by more than 0.7 points; gamma 0.5 at "
        "T 3 trades accuracy between exits: exit 1 +2.4 +- 1.1, exits 3-4 -1.4 to -1.5, mean +0.0. The deepest "
        "exit is only as good as the plain one (0.95) after 10 epochs and the shallow exits are capacity-limited "
        "(pooled heads after the stem), so the KD target adds information only to the weakest exit."),
    "mutual": (
        "null: peer 1 (same init as the student alone) -0.6 +- 1.7 points, peer 2 0.866; with a capacity-bound "
        "width-8 student (94 % train accuracy) the peer's soft targets act as a regulariser it does not need "
        "(DML's gains are on over-parameterised CIFAR nets). Both peers share one summed loss (documented "
        "difference: the paper alternates updates)."),
    "byot": (
        "negative for the final exit, positive for the shallow ones: BYOT lifts exit 1 by +2.8 +- 1.2 and exit 2 "
        "by +1.5 +- 0.7 points but costs the final exit 1.6 +- 0.8; and attaching exits at all costs the width-8 "
        "student 2.8 points (0.816 vs 0.844 alone), so the backbone's capacity is the constraint. The paper's "
        "final-classifier gains come from deep ResNets with bottleneck exits, not a 3-block 1-D CNN."),
    "swa": (
        "null against cosine (-0.1 +- 0.3 points), as before; against a constant lr it recovers the cosine "
        "result (+1.1 over constant SGD: 0.963 vs 0.953). The reason: cosine annealing already ends in a flat, "
        "well-averaged region at this scale; SWA's advantage is over schedules that stay at a high lr."),
}
FINDINGS.update({
    "chex": (
        "level at equal epochs, negative at fewer: CHEX trained from scratch for 18 epochs reaches 0.961 at 39 % "
        "of the MACs, the same as dense training (12) + L1 prune to the same MACs + 6 fine-tune epochs (0.960); "
        "with 12 epochs (two thirds of the baseline's) it is 1.9 +- 0.6 points behind. So the paper's claim "
        "(no dense pre-training needed for the same accuracy) holds here at equal epochs; leandl's CHEX keeps the "
        "pruned channels as zero masks during training, so its epochs cost dense compute (no training speed-up)."),
    "soft_filter_pruning": (
        "level at equal epochs: SFP for 18 epochs from scratch (0.961 at 61 % MACs) matches dense 12 + hard L2 "
        "prune + 6 fine-tune epochs (0.963); SFP for 12 epochs is 0.9 +- 0.5 points behind; ASFP (rate rising "
        "asymptotically) is 2.6 +- 1.6 behind at 12 epochs: its rate reaches the final 30 % late, leaving fewer "
        "epochs at the final structure before the physical removal."),
    "di_pruning": (
        "negative, explained: DI with the reference rho 0.1 prunes worse than L1 (no fine-tune 0.17 vs 0.42, after "
        "1 epoch 0.86 vs 0.93), globally and layerwise. Cause: at batch 64 each conv layer has D = C x L = 1280-2560 "
        "features >> B, the ridge fit interpolates the labels and DI sits at 99.9 % of its bound tr(Y'Y) at every "
        "layer (probe), so dDI/dm carries little information. A scale-relative rho (1e4 ~ tr(K)/B) leaves "
        "saturation and lifts DI to 0.38 before fine-tuning (L1 0.42, within the seeds' spread) but after "
        "1 epoch it is still 0.87 vs 0.93. Taylor is also below L1 on this "
        "trained CNN (0.30 vs 0.42 before fine-tuning)."),
    "maxdropout": (
        "negative: MaxDropout (rate 0.3, whole-batch min-max as in the official code) is 3.0 +- 1.2 points below "
        "dropout and 1.9 below no dropout on an overfitting MLP; per-sample min-max is worse (-7.6). Why: after "
        "ReLU the activations are heavy-tailed, so 'x_n > 0.7' zeroes only 0.1-0.2 % of units (probe, 5 epochs; "
        "2.8-3.1 % per sample at init), always the strongest ones and without rescaling: a weak regulariser that "
        "removes the most informative features and shifts the train/eval scale. The paper places it after conv "
        "stages of ResNets/WRNs on CIFAR, not after dense ReLU layers."),
})
_KD_WHY = ("The teacher (width 32) reaches 100 % train accuracy on the 2160 training samples (probe), so its "
           "train-set outputs are near one-hot and carry little dark knowledge, and its test lead over a width-16 "
           "student alone is only 2.2 points (0.958 vs 0.936); the width-8 student is capacity-bound (94 % train "
           "accuracy). Plain KD is null here too (width 8 -0.2, width 16 -0.3 points), so the family's null "
           "results are the workload's, not the losses'.")
FINDINGS.update({
    "attention": (
        "negative at the paper's beta, null at a rescaled one: beta 1000 drives the width-8 student to 0.557 "
        "(-28.8 points): the loss is a mean over positions, and MNIST-1D's maps have 10-40 positions instead of "
        "CIFAR's 64-1024, so the term is 25-100x larger relative to CE and swamps it. At beta 40 the width-8 "
        "student is 4.1 +- 4.2 points behind (0.803), the width-16 student level with its baseline (-0.3 +- 1.7). "
        + _KD_WHY),
    "dkd": (
        "negative at beta 8, null at beta 2: DKD with mdistiller's CIFAR-100 beta 8 is 6.0 points (width 8) and "
        "4.6 +- 2.1 points (width 16) below the student alone; beta 2 is +1.2 +- 1.2 (width 8) and -1.0 +- 1.8 "
        "(width 16). beta "
        "weights the non-target (NCKD) term, which with 10 classes and a near-one-hot teacher is mostly noise; "
        "mdistiller itself uses beta 0.5 on ImageNet. " + _KD_WHY),
    "fitnet": (
        "negative at hint weight 100, null at 10: with the default weight 100 the hint term dominates (-5.3 points "
        "at width 8); at 10 it is -1.0 +- 2.1 (width 8) and -1.2 +- 2.5 (width 16). leandl trains the hint jointly with "
        "CE (FitNets' stage-wise hint pre-training is not done), so the weight must be set to the feature scale. "
        + _KD_WHY),
    "rkd": (
        "null: RKD (distance 25 + angle 50 on the penultimate embedding) is -1.7 +- 2.4 points at width 8 and "
        "+0.6 +- 1.2 at width 16; distance-only -0.2 at width 8. RKD transfers the geometry of the teacher's embedding, which adds little for a "
        "10-class problem whose embedding is already organised by the CE loss. " + _KD_WHY),
})
