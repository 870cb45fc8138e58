"""ONNX Runtime int8 quantization: static QDQ (calibrated) and dynamic (MatMul/Gemm only).

Static (``quantize_static``): activation ranges are calibrated on N batches of real inputs
(MinMax, Percentile or Entropy, reference B2); weights are int8 symmetric, per output channel
by default; activations uint8 asymmetric (ONNX Runtime's recommendation for x86: U8 activations,
S8 weights); the graph is written in QDQ format (QuantizeLinear/DequantizeLinear pairs around
each op) and ONNX Runtime fuses the pairs into integer kernels when it loads the file.

Dynamic (``quantize_dynamic``): weights int8, activation scales computed per batch at run time.
It is restricted to ``MatMul``/``Gemm``: on a conv net, dynamic quantization of Conv produces
``ConvInteger``, measured 7-14x SLOWER than fp32 ONNX Runtime here (MEASURED.md), so conv
layers stay fp32 (use static int8 for CNNs).

``reduce_range`` (7-bit weights) avoids int16 saturation of u8 x s8 products on x86 without
VNNI (``leandl.measure.cpu_description()`` says which a machine has; reference B5.7); it is off by default because per-channel
int8 weights measured no accuracy loss here, and it costs one bit of weight precision.

Both run ``quant_pre_process`` first (shape inference + graph optimisation, e.g. BN folding).
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import threading
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from leandl.deploy.calibration import TensorDataReader
from leandl.deploy.conv_padding import pad_input_convs_checked
from leandl.deploy.onnx_export import validate_onnx
from leandl.errors import ConfigError, ModelError
from leandl.memory import release_memory

__all__ = ["CalibrateMethod", "quantize_static_onnx", "quantize_dynamic_onnx", "op_counts", "compact_names",
           "DYNAMIC_OP_TYPES",
           "WEIGHT_OP_TYPES"]

CalibrateMethod = Literal["minmax", "percentile", "entropy"]
DYNAMIC_OP_TYPES = ("MatMul", "Gemm")
WEIGHT_OP_TYPES = ("MatMul", "Gemm", "Conv")


def uses_external_data(path: str | Path) -> bool:
    """Whether an ONNX file keeps tensors in external data files (models over protobuf's 2 GB
    limit: torch's exporter writes them so, e.g. torchvision's regnet_y_128gf and vit_h_14)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False)
    return any(t.data_location == onnx.TensorProto.EXTERNAL for t in graph.graph.initializer)


def onnx_file_bytes(path: str | Path) -> int:
    """Bytes of an ONNX model on disk: the file plus the external data files it references."""
    import onnx

    path = Path(path)
    graph = onnx.load(str(path), load_external_data=False)
    files = {e.value for t in graph.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL
             for e in t.external_data if e.key == "location"}
    return path.stat().st_size + sum((path.parent / f).stat().st_size for f in files if (path.parent / f).is_file())


def _preprocess(src: Path, dst: Path) -> tuple[Path, bool]:
    """ONNX Runtime's pre-processing of ``src`` into ``dst``; returns ``(dst, external)``, whether
    the model keeps its tensors in an external data file (then ``dst`` does too)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, dst = Path(src).resolve(), Path(dst).resolve()
    is_external = uses_external_data(src)
    external = {"save_as_external_data": True, "all_tensors_to_one_file": True,
                "external_data_location": f"{dst.name}.data"} if is_external else {}
    # ONNX Runtime's symbolic shape inference, when it cannot infer every shape (BERT's masks),
    # saves "sym_shape_infer_temp.onnx" and an external-data file into the current directory:
    # run it from dst's (temporary) folder so nothing is left in the user's.
    with _quiet(), _CWD_LOCK, contextlib.chdir(dst.parent):
        try:
            quant_pre_process(str(src), str(dst), skip_symbolic_shape=False, **external)
        except Exception:  # symbolic shape inference fails on some graphs; ONNX shape inference suffices
            quant_pre_process(str(src), str(dst), skip_symbolic_shape=True, **external)
    return dst, is_external


def _single_file(src: Path, dst: Path, external: bool) -> Path:
    """Move the quantized model ``src`` to ``dst``; one written with external data is re-saved as
    one file (an int8 model past protobuf's 2 GB limit, i.e. an fp32 model past about 8 GB, is
    refused)."""
    import shutil

    import onnx

    if not external:
        shutil.move(str(src), str(dst))
        return dst
    graph = onnx.load(str(src))  # reads external data from src's folder
    if graph.ByteSize() >= (1 << 31) - (1 << 20):
        raise ModelError(f"the int8 model is {graph.ByteSize() / 1e9:.2f} GB, past ONNX's 2 GB single-file limit",
                         where=str(dst), fix="quantize a smaller model (leandl writes int8 ONNX as one file)")
    onnx.save(graph, str(dst))
    return dst


_CWD_LOCK = threading.Lock()


@contextlib.contextmanager
def _quiet() -> Any:
    """Silence the progress prints and root-logger warnings of ONNX Runtime's quantization tools
    (e.g. "Axis 1 is out-of-range" for a LayerNorm weight it then quantizes per tensor)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def _method(name: str) -> Any:
    from onnxruntime.quantization import CalibrationMethod

    table = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
             "entropy": CalibrationMethod.Entropy}
    if name not in table:
        raise ConfigError(f"unknown calibrate_method '{name}'", where="calibrate_method",
                          fix="use minmax, percentile or entropy")
    return table[name]


def quantize_static_onnx(
    fp32_path: str | Path,
    out_path: str | Path,
    calibration: Sequence[Any],
    *,
    calibrate_method: CalibrateMethod = "minmax",
    per_channel: bool = True,
    reduce_range: bool = False,
    pad_input_channels: int | None = 4,
    op_types: Sequence[str] | None | Literal["auto"] = "auto",
    keep_float: Sequence[str] = (),
    info: dict[str, Any] | None = None,
) -> Path:
    """Static int8 QDQ quantization of an ONNX file, calibrated on ``calibration`` batches.

    Args:
        fp32_path: the float ONNX model.
        out_path: where to write the int8 model.
        calibration: input batches, >= 1: tensors, tuples of positional inputs or dicts keyed by
            graph input name, of any dtype (token ids stay integers; each array is cast to its
            graph input's dtype).
        calibrate_method: activation range estimator.
        per_channel: one weight scale per output channel (else per tensor).
        reduce_range: 7-bit weights (see the module notes).
        pad_input_channels: zero-pad the input channels of convolutions that read a graph input
            to a multiple of this, so ONNX Runtime's fast int8 conv kernel applies to the stem
            (:mod:`leandl.deploy.conv_padding`; exact). ``None`` leaves the graph as it is.
            Padding is checked (strict shape inference, and the first calibration batch run
            padded and unpadded in ONNX Runtime) and skipped, with a warning, when the graph
            does not allow it; it never makes quantization fail.
        op_types: op types to quantize. ``"auto"``: on a graph with more ``MatMul``/``Gemm``
            than ``Conv`` nodes (transformers, MLPs) only :data:`WEIGHT_OP_TYPES` (the layers
            with weights), elsewhere every op ONNX Runtime quantizes (``None``). Quantizing the
            other float ops of a transformer (RMSNorm, rotary embeddings, T5's relative position
            buckets, computed in float and cast to indices) broke it: a random-init LLaMA's int8
            output had cosine 0.49 to fp32 and T5's int8 file indexed out of bounds; with the
            weight ops only, 0.9993 and 0.9998 (``benchmarks/int8_zoo.py``).
        keep_float: names of nodes left in float (e.g. the layers whose inputs carry activation
            outliers: on the real all-MiniLM-L6-v2, keeping the 6 MLP output projections float
            raised the embedding cosine to fp32 from 0.93 to 0.99, ``benchmarks/int8_real_weights.py``).
            A name the graph lacks is a ConfigError naming it.
        info: when given, ``info["stem_padding"]`` receives what padding did (``"padded ..."``,
            ``"not needed: ..."``, ``"skipped: <reason>"`` or ``"off"``) and ``info["op_types"]``
            the op types quantized (``"all"`` or a list).

    Returns:
        ``out_path``, after ONNX Runtime loaded it and ran the first calibration batch.
    """
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    if not calibration:
        raise ConfigError("static quantization needs at least one calibration batch", where="calibration_batches")
    method = _method(calibrate_method)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pre, external = _preprocess(Path(fp32_path), Path(tmp) / "pre.onnx")
        graph = onnx.load(str(pre))
        note, padded = "off", None
        if pad_input_channels is not None:
            padded, note = pad_input_convs_checked(graph, pad_input_channels, calibration[0])
            if padded is not graph:
                graph = padded
                onnx.save(graph, str(pre), save_as_external_data=external, all_tensors_to_one_file=True,
                          location="pre.onnx.padded.data")
            elif note.startswith("skipped"):
                warnings.warn(f"int8 stem padding {note}; quantizing the graph unpadded", UserWarning, stacklevel=2)
        if info is not None:
            info["stem_padding"] = note
        weights = {t.name for t in graph.graph.initializer}
        graph_inputs = [i for i in graph.graph.input if i.name not in weights]
        names = [i.name for i in graph_inputs]
        dtypes = [onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type) for i in graph_inputs]
        # Past 2 GB of weights (external data), MinMax calibration feeds one sample at a time: the
        # same ranges, a batch-size times fewer activations at once (ViT-H/14, batches of 4:
        # 9.3 GB -> 2.4 GB of growth in the calibration session; the whole run had hit 24 GB).
        per_sample = external and calibrate_method == "minmax" and all(_dynamic_batch(i) for i in graph_inputs)
        reader = TensorDataReader(calibration, names, dtypes, per_sample=per_sample)
        unknown = sorted(set(keep_float) - {n.name for n in graph.graph.node})
        if unknown:
            raise ConfigError(f"keep_float names nodes the graph lacks: {', '.join(unknown[:5])}",
                              where="keep_float", fix="use node names of the exported ONNX graph (onnx.load(path))")
        ops = _op_types(graph, op_types)
        if info is not None:
            info["op_types"] = "all" if ops is None else list(ops)
        del graph, padded  # a model-sized copy quantize_static does not need (ViT-H/14 ran out of 24 GB)
        release_memory()
        written = Path(tmp) / "int8.onnx"  # external data (if any) lands beside it, in tmp
        with _quiet():  # the calibrators print progress lines
            quantize_static(str(pre), str(written), reader, quant_format=QuantFormat.QDQ, per_channel=per_channel,
                            reduce_range=reduce_range, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, calibrate_method=method,
                            op_types_to_quantize=list(ops) if ops is not None else None,
                            nodes_to_exclude=list(keep_float), use_external_data_format=external,
                            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})
        _single_file(written, out_path, external)
    compact_names(out_path)
    validate_onnx(out_path, calibration[0])
    return out_path


def _dynamic_batch(graph_input: Any) -> bool:
    """Whether a graph input's first dimension is symbolic (any batch size runs)."""
    dims = graph_input.type.tensor_type.shape.dim
    return bool(dims) and not dims[0].HasField("dim_value")


def _op_types(graph: Any, op_types: Sequence[str] | None | str) -> Sequence[str] | None:
    """The op types to quantize (``None``: all that ONNX Runtime quantizes); see ``op_types``."""
    if op_types != "auto":
        return op_types  # type: ignore[return-value]
    counts = Counter(n.op_type for n in graph.graph.node)
    if counts["MatMul"] + counts["Gemm"] > counts["Conv"]:
        return WEIGHT_OP_TYPES
    return None


def quantize_dynamic_onnx(fp32_path: str | Path, out_path: str | Path, *, per_channel: bool = True) -> Path:
    """Dynamic int8 quantization of the ``MatMul``/``Gemm`` nodes only (never ``ConvInteger``).

    Args:
        fp32_path: the float ONNX model.
        out_path: where to write the int8 model.
        per_channel: per-column weight scales (default). On the real all-MiniLM-L6-v2 weights,
            per-tensor scales gave sentence embeddings with cosine 0.966 to fp32, per-column
            0.994, at the same speed (``benchmarks/int8_real_weights.py``); random-init weights
            hide the difference.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pre, external = _preprocess(Path(fp32_path), Path(tmp) / "pre.onnx")
        written = Path(tmp) / "int8.onnx"
        quantize_dynamic(str(pre), str(written), per_channel=per_channel, weight_type=QuantType.QInt8,
                         op_types_to_quantize=list(DYNAMIC_OP_TYPES), use_external_data_format=external)
        _single_file(written, out_path, external)
    return compact_names(out_path)


def op_counts(path: str | Path) -> dict[str, int]:
    """How many nodes of each op type the ONNX graph at ``path`` has (top-level graph)."""
    import onnx

    model = onnx.load(str(path))
    return dict(Counter(node.op_type for node in model.graph.node))


def compact_names(path: str | Path) -> Path:
    """Rewrite an ONNX file with short tensor names, no node names, doc strings or value_info.

    A QDQ graph names every tensor after its op path (``/layer1/layer1.0/Conv_output_0_quantized``)
    and repeats each name in several nodes; on a tiny model those strings are ~10 % of the int8
    file. Graph inputs and outputs keep their names; the computation is unchanged. Graphs with
    subgraphs (If/Loop/Scan, which may read outer names) are left as they are.
    """
    import onnx

    model = onnx.load(str(path))
    g = model.graph
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in g.node for a in n.attribute):
        return Path(path)
    keep = {v.name for v in g.input} | {v.name for v in g.output}
    table: dict[str, str] = {}

    def short(name: str) -> str:
        if not name or name in keep:
            return name
        return table.setdefault(name, f"t{len(table)}")

    for init in g.initializer:
        init.name = short(init.name)
    for node in g.node:
        node.name, node.doc_string = "", ""
        node.input[:] = [short(n) for n in node.input]
        node.output[:] = [short(n) for n in node.output]
    del g.value_info[:]
    g.doc_string = ""
    onnx.save(model, str(path))
    return Path(path)
