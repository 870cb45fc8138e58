"""Pad the input channels of convolutions that read a graph input, so int8 kernels apply.

ONNX Runtime's fast int8 convolution on x86 (MLAS's "symmetric" indirect convolution, used when
weights are int8 with zero point 0, as leandl's static quantization writes them) needs the
input channels to be a multiple of 4 and at least 16 output channels in multiples of 8; a
convolution that misses this falls back to im2col + GEMM. An RGB stem (3 input channels) always
misses it: on ResNet-56 at 32x32, batch 64, 2 threads, the int8 stem took 2.7 ms where the fp32
one took 1.0 ms, and padding its input to 4 zero-filled channels brought it to 1.3 ms.

The padding is exact: the extra input channel is zero and so are the weights that read it, and
zero is exactly representable in every affine int8 grid. It is only done where it is cheap: on
a convolution whose input is a float graph input (a float ``Pad`` before the first
``QuantizeLinear``) with a constant weight.

It is an optimisation, never a reason to fail: :func:`pad_input_convs_checked` pads a copy,
runs ONNX's strict shape inference and checker on it and, given inputs, compares it with the
unpadded graph in ONNX Runtime; when anything fails or differs (an unusual graph: a weight
computed at run time, shapes recorded that no longer hold, ...) the graph is left unpadded and
the returned note says why. (timm's ``nfnet_l0``: its standardized stem weight is constant
folded into an initializer that also has a recorded shape; padding it without dropping that
record made ONNX's shape inference, and so quantization, fail.)
"""

from __future__ import annotations

from typing import Any

__all__ = ["pad_input_convs", "pad_input_convs_checked"]


def _group(node: Any) -> int:
    return next((int(a.i) for a in node.attribute if a.name == "group"), 1)


def pad_input_convs(model: Any, multiple: int = 4) -> list[str]:
    """Zero-pad, in place, the input channels of each Conv that reads a graph input.

    Applies to ungrouped convolutions (``group == 1``) whose weight is an initializer with an
    input-channel count that is not a multiple of ``multiple`` and whose output channels meet
    the kernel's other condition (at least 16, a multiple of 8); elsewhere padding would only
    add bytes. A ``Pad`` node (constant 0 on the channel axis, end side) is inserted once per
    graph input; the weight gets zero slices.

    Args:
        model: an ``onnx.ModelProto`` (modified in place).
        multiple: pad channel counts up to a multiple of this (>= 1).

    Returns:
        The names of the weights that were padded (empty when nothing applied).
    """
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    g = model.graph
    float_types = {1, 10, 11, 16}  # FLOAT, FLOAT16, DOUBLE, BFLOAT16
    inputs = {v.name for v in g.input if v.type.tensor_type.elem_type in float_types} - {i.name for i in g.initializer}
    inits = {i.name: i for i in g.initializer}
    padded_inputs: dict[tuple[str, int], str] = {}
    new_nodes: list[Any] = []
    done: list[str] = []
    for node in g.node:
        if node.op_type != "Conv" or node.input[0] not in inputs or _group(node) != 1:
            continue
        w_init = inits.get(node.input[1])
        if w_init is None:
            continue
        w = numpy_helper.to_array(w_init)
        if w.ndim < 3:
            continue
        cin, cout = w.shape[1], w.shape[0]
        extra = -cin % multiple
        if extra == 0 or cout < 16 or cout % 8:
            continue  # nothing to pad, or the fast kernel would still not apply (output side)
        wide = np.zeros((w.shape[0], cin + extra, *w.shape[2:]), dtype=w.dtype)
        wide[:, :cin] = w
        users = sum(name == w_init.name for n in g.node for name in n.input)
        if users > 1:  # another node reads the same weight: give this conv its own copy
            new_name = f"{w_init.name}_pad{cin + extra}"
            g.initializer.append(numpy_helper.from_array(wide, new_name))
            node.input[1] = new_name
        else:
            w_init.CopyFrom(numpy_helper.from_array(wide, w_init.name))
        key = (node.input[0], extra)
        if key not in padded_inputs:
            rank = w.ndim
            pads = [0] * (2 * rank)
            pads[rank + 1] = extra
            out = f"{node.input[0]}_pad_c{cin + extra}"
            pads_name = f"{out}_pads"
            g.initializer.append(numpy_helper.from_array(np.array(pads, dtype=np.int64), pads_name))
            new_nodes.append(helper.make_node("Pad", [node.input[0], pads_name], [out], mode="constant"))
            padded_inputs[key] = out
        node.input[0] = padded_inputs[key]
        done.append(w_init.name)
    if new_nodes:
        old = list(g.node)
        del g.node[:]
        g.node.extend(new_nodes + old)
    if done:
        # recorded shapes of the padded weights (and everything inferred from them) no longer hold
        changed = set(done)
        keep = [v for v in g.value_info if v.name not in changed]
        del g.value_info[:]
        g.value_info.extend(keep)
        onnx.checker.check_model(model)
    return done


def pad_input_convs_checked(model: Any, multiple: int = 4, check_inputs: Any = None,
                            tolerance: float = 1e-4) -> tuple[Any, str]:
    """:func:`pad_input_convs` on a copy, kept only when it is valid and exact; never raises.

    Args:
        model: an ``onnx.ModelProto`` (not modified).
        multiple: pad channel counts up to a multiple of this.
        check_inputs: an input batch (:mod:`leandl.deploy.io` forms); when given, the padded
            and unpadded graphs are run in ONNX Runtime on it and must agree to ``tolerance``
            (relative to the largest output magnitude).
        tolerance: relative agreement required.

    Returns:
        ``(model_to_use, note)``: the padded copy and ``"padded N conv(s): ..."``, or the
        original and ``"not needed: ..."`` / ``"skipped: <reason>"``.
    """
    import onnx

    try:
        padded = onnx.ModelProto()
        padded.CopyFrom(model)
        names = pad_input_convs(padded, multiple)
        if not names:
            return model, "not needed: no convolution on a float graph input misses the int8 kernel's channel rule"
        onnx.checker.check_model(padded, full_check=True)  # strict shape inference too
        if check_inputs is not None:
            diff, scale = _ort_disagreement(model, padded, check_inputs)
            if not diff <= tolerance * max(1.0, scale):
                return model, f"skipped: padded graph differs from the original by {diff:.3g} (not exact here)"
        return padded, f"padded {len(names)} conv(s) to {multiple}-multiple input channels: {', '.join(names)}"
    except Exception as exc:  # padding is optional; any failure leaves the graph as it was
        text = " ".join(str(exc).split())[:200]
        return model, f"skipped: {type(exc).__name__}: {text}"


def _ort_disagreement(a: Any, b: Any, inputs: Any) -> tuple[float, float]:
    """``max |out_a - out_b|`` over all outputs and ``max |out_a|``, both run in ONNX Runtime."""
    import numpy as np
    import onnxruntime as ort

    from leandl.deploy.io import feed_dict

    outs = []
    for m in (a, b):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 3
        sess = ort.InferenceSession(m.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])
        outs.append(sess.run(None, feed_dict(inputs, [i.name for i in sess.get_inputs()])))
    diff = max((float(np.abs(x - y).max()) if x.size else 0.0) for x, y in zip(*outs))
    scale = max((float(np.abs(x).max()) if x.size else 0.0) for x in outs[0])
    return diff, scale
