"""Static INT8 (QDQ, per-channel int8 weights) with onnxruntime.quantization, calibrated on real
images that went through the spine's preprocess. quant_pre_process (symbolic shape inference +
ORT graph optimization) runs first, as the ORT docs recommend for QDQ models. Which layers stay
fp32 and which calibration method is used are chosen by int8_choice on held-out calibration
images; this module builds one INT8 model for one such choice."""

from __future__ import annotations

import contextlib
import inspect
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from catdog.export.options import ExportOptions
from catdog.runtime.spine.errors import InputError

# --calib-method NAME -> onnxruntime CalibrationMethod attribute name.
CALIB_METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
# Used when no choice is made (--no-int8-select, or no held-out calibration images); the
# candidates int8_choice tries when --calib-method is not given.
DEFAULT_CALIB_METHOD = "minmax"
CALIB_CANDIDATES = ("minmax", "percentile")  # entropy: slower, and it needs every histogram in memory
# --int8-activations NAME -> onnxruntime QuantType. Weights are always int8. uint8 activations
# (U8S8) is what ORT's x86 AVX2 kernels are fast at: on this 2-core EPYC (AVX2, no VNNI) the
# shipped model ran 193 img/s U8S8 vs 124 S8S8 vs 131 fp32 (batch 16). Those kernels (VPMADDUBSW)
# add pairs of u8*s8 products in int16, which saturates with full 8-bit weights: U8S8 therefore
# quantizes weights to 7 bits (reduce_range), as the ORT docs advise for non-VNNI x86. Without it a
# mobilenet_v3_small fell to 91.7% top-1 agreement; with it 100% (S8S8: 100%, but 1.5x slower).
ACTIVATION_TYPES = {"uint8": "QUInt8", "int8": "QInt8"}


@dataclass(frozen=True)
class Int8Format:
    """What a CPU INT8 model is made of for one --int8-target (runtime/spine/isa.py's TARGETS)."""

    activations: str  # a key of ACTIVATION_TYPES
    reduce_range: bool  # 7-bit weights
    why: str


# Read by name. avx2 is the default because the exporting CPU is rarely the deploying one: 7-bit
# weights cannot saturate VPMADDUBSW's int16 pair sums, so the model computes exactly on every CPU.
INT8_FORMATS = {
    "avx2": Int8Format("uint8", True, "U8S8 with 7-bit weights: exact on x86 without VNNI (no int16 saturation) "
                                      "and on every other CPU"),
    "vnni": Int8Format("uint8", False, "U8S8 with full 8-bit weights: VNNI's VPDPBUSD accumulates in int32; "
                                       "on x86 without VNNI these weights can saturate"),
    "arm": Int8Format("int8", False, "S8S8 with full 8-bit weights: ARM's dot-product and NEON kernels accumulate "
                                     "in int32; on x86 S8S8 is slow (0.98x fp32 measured on AVX2)"),
}
DEFAULT_TARGET = ExportOptions.int8_target
DEFAULT_ACTIVATIONS = INT8_FORMATS[DEFAULT_TARGET].activations


def resolve_target(name: str) -> tuple[str, str]:
    """(target, how it was chosen) for --int8-target NAME; auto: the CPU running the export."""
    from catdog.runtime.spine.isa import int8_path, target_of

    if name == "auto":
        here = int8_path()
        return target_of(here), f"auto: this CPU's integer path is {here}"
    if name not in INT8_FORMATS:
        raise InputError(f"unknown --int8-target {name!r}; known: {', '.join(INT8_FORMATS)}, auto")
    return name, "given" if name != DEFAULT_TARGET else "the default"
# Layer sets kept in fp32 (names for the report -> which boundary layers), the candidates of
# int8_choice. Both boundary layers are ~1% of the FLOPs, and quantizing the 3-channel normalized
# input usually costs the most: efficientnet_lite0 agreed with fp32 on 97.25% of the 400 test
# photos all-INT8, 99.0% with the stem in fp32. Those figures were measured on the test set, which
# is why the set is now chosen per export on held-out calibration images instead.
KEEP_FP32 = {"stem+classifier": ("stem", "classifier"), "classifier": ("classifier",), "stem": ("stem",)}
DEFAULT_KEEP = "stem+classifier"
WEIGHTED = ("Conv", "Gemm", "MatMul")


def calibration_method(name: str):
    from onnxruntime.quantization import CalibrationMethod

    if name not in CALIB_METHODS:
        raise InputError(f"unknown --calib-method {name!r}; known: {', '.join(CALIB_METHODS)}")
    return getattr(CalibrationMethod, CALIB_METHODS[name])


def activation_type(name: str):
    from onnxruntime.quantization import QuantType

    if name not in ACTIVATION_TYPES:
        raise InputError(f"unknown --int8-activations {name!r}; known: {', '.join(ACTIVATION_TYPES)}")
    return getattr(QuantType, ACTIVATION_TYPES[name])


def _reader(batch: np.ndarray, input_name: str):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        """One preprocessed image per call; set_range/len let quantize_static feed the calibrator
        in strides (CalibStridedMinMax) so intermediate tensors of every image are never all held
        in memory at once (the histogram calibrators keep everything otherwise)."""

        def __init__(self) -> None:
            self.set_range(0, len(batch))

        def __len__(self) -> int:
            return len(batch)

        def set_range(self, start_index: int, end_index: int) -> None:
            self._it = iter(batch[start_index:end_index])

        def get_next(self):
            x = next(self._it, None)
            return None if x is None else {input_name: x[None]}

    return Reader()


def _stride(n: int, most: int = 16) -> int:
    """Largest stride <= most that divides n (quantize_static requires an exact division)."""
    return max(d for d in range(1, min(n, most) + 1) if n % d == 0)


def boundary_layers(model: onnx.ModelProto) -> dict[str, list[str]]:
    """{"stem": the first weighted layers (Conv with no Conv/Gemm/MatMul upstream), "classifier":
    the last ones (Gemm/MatMul with no weighted layer downstream)}. Found by walking the graph, not
    by adjacency to its input/output: a --tta-flip graph has two of each, one behind a flip and
    both ahead of the averaging."""
    after: set[str] = set()  # tensors downstream of a weighted layer
    stem = []
    for n in model.graph.node:  # ONNX nodes are topologically sorted
        upstream = any(i in after for i in n.input)
        if n.op_type == "Conv" and not upstream:
            stem.append(n.name)
        if upstream or n.op_type in WEIGHTED:
            after.update(n.output)
    feeds: set[str] = set()  # tensors upstream of a weighted layer
    head = []
    for n in reversed(model.graph.node):
        downstream = any(o in feeds for o in n.output)
        if n.op_type in ("Gemm", "MatMul") and not downstream:
            head.append(n.name)
        if downstream or n.op_type in WEIGHTED:
            feeds.update(n.input)
    return {"stem": stem, "classifier": head[::-1]}


def boundary_nodes(model: onnx.ModelProto, keep: str = DEFAULT_KEEP) -> list[str]:
    """Node names of the KEEP_FP32[keep] layer set."""
    if keep not in KEEP_FP32:
        raise InputError(f"unknown fp32 layer set {keep!r}; known: {', '.join(KEEP_FP32)}")
    layers = boundary_layers(model)
    return [name for part in KEEP_FP32[keep] for name in layers[part]]


def _has_calibration_cache() -> bool:
    from onnxruntime.quantization import quantize_static

    return "calibration_cache_path" in inspect.signature(quantize_static).parameters


class Int8Quantizer:
    """One fp32 graph and calibration batch, quantized under several choices: pre-processing runs
    once, and calibration once per method when onnxruntime can cache the ranges (1.2x+); the
    ranges do not depend on which layers stay fp32. Use as a context manager (temp files)."""

    def __init__(self, fp32: onnx.ModelProto, calib: np.ndarray, activations: str = DEFAULT_ACTIVATIONS,
                 symmetric: bool = False, reduce_range: bool | None = None):
        from onnxruntime.quantization.shape_inference import quant_pre_process

        self.act_type = activation_type(activations)
        self.activations = activations
        # None: 7-bit weights exactly when activations are uint8 (INT8_FORMATS["avx2"])
        self.reduce_range = activations == "uint8" if reduce_range is None else reduce_range
        if symmetric and activations != "int8":
            raise InputError("symmetric INT8 (for TensorRT) needs int8 activations")
        self.symmetric = symmetric
        if len(calib) == 0:
            raise InputError("INT8 calibration needs at least one readable image in --calib")
        self.calib, self.input_name = calib, fp32.graph.input[0].name
        self._tmp = tempfile.TemporaryDirectory(prefix="catdog-int8-")  # the quantizer works on files
        self.dir = Path(self._tmp.name)
        src, self.pre = self.dir / "fp32.onnx", self.dir / "pre.onnx"
        src.write_bytes(fp32.SerializeToString())
        with contextlib.redirect_stdout(io.StringIO()):  # progress lines; the CLI's stdout is the report
            quant_pre_process(str(src), str(self.pre))
        self.layers = onnx.load(str(self.pre), load_external_data=False)
        self._cache = _has_calibration_cache()

    def __enter__(self) -> "Int8Quantizer":
        return self

    def __exit__(self, *exc) -> None:
        self._tmp.cleanup()

    def build(self, method: str = DEFAULT_CALIB_METHOD, keep: str = DEFAULT_KEEP,
              also_fp32: tuple[str, ...] = ()) -> onnx.ModelProto:
        """`also_fp32`: node names (of `self.layers`) kept in fp32, inputs included, besides KEEP_FP32[keep]."""
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

        calibrate_method = calibration_method(method)
        unknown = sorted(set(also_fp32) - {n.name for n in self.layers.graph.node})
        if unknown:
            raise InputError(f"cannot keep {unknown[0]!r} in fp32: no such node in the graph")
        dst = self.dir / f"int8-{method}-{keep}-{len(also_fp32)}.onnx"
        cache = {"calibration_cache_path": str(self.dir / f"ranges-{method}.json")} if self._cache else {}
        with contextlib.redirect_stdout(io.StringIO()):
            quantize_static(
                str(self.pre),
                str(dst),
                _reader(self.calib, self.input_name),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=self.act_type,
                weight_type=QuantType.QInt8,
                reduce_range=self.reduce_range,
                calibrate_method=calibrate_method,
                nodes_to_exclude=boundary_nodes(self.layers, keep) + list(also_fp32),
                extra_options={"CalibStridedMinMax": _stride(len(self.calib)), **self._symmetry()},
                **cache,
            )
        if not also_fp32:
            return onnx.load(str(dst))
        from catdog.export.int8.qdq_surgery import float_inputs  # their inputs too, not only their weights

        return float_inputs(onnx.load(str(dst)), also_fp32, self.layers)

    def _symmetry(self) -> dict[str, bool]:
        # TensorRT takes int8 Q/DQ with zero point 0 only: ranges symmetric about 0 for both. Biases stay
        # float (TensorRT fuses them itself; it has no int32 DequantizeLinear to read them from).
        return {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False} if self.symmetric else {}


def qdq_summary(model: onnx.ModelProto) -> dict[str, int]:
    """Counts that prove the format: QDQ pairs and per-channel weight quantization (axis set,
    a vector of scales)."""
    inits = {t.name: t for t in model.graph.initializer}
    q = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    per_channel = 0
    for n in dq:
        scale = inits.get(n.input[1])
        if n.input[0] in inits and scale is not None and len(scale.dims) == 1 and scale.dims[0] > 1:
            per_channel += 1
    return {"quantize_linear": len(q), "dequantize_linear": len(dq), "per_channel_weights": per_channel}


def max_int8_weight(model: onnx.ModelProto) -> int:
    """The largest |quantized weight| of the Conv/Gemm/MatMul layers (0: none quantized). Above
    isa.SAFE_WEIGHT, ORT's CPU kernels on x86 without VNNI can saturate (runtime/spine/isa.py): a
    property of the file, the same whichever CPU reads it."""
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    weights_of = {n.input[1] for n in model.graph.node if n.op_type in WEIGHTED and len(n.input) > 1}
    top = 0
    for n in model.graph.node:
        if n.op_type == "DequantizeLinear" and n.output[0] in weights_of and n.input[0] in inits:
            w = numpy_helper.to_array(inits[n.input[0]]).astype(np.int32)
            top = max(top, int(np.max(np.abs(w))) if w.size else 0)
    return top


def symmetric_qdq_problems(model: onnx.ModelProto, most: int = 5) -> list[str]:
    """Why TensorRT would refuse this QDQ model (empty: it is symmetric int8): every Q/DQ zero point
    an int8 zero, every Conv/Gemm/MatMul weight quantized per channel (one scale per channel)."""
    from onnx import TensorProto, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    weights_of = {n.input[1] for n in model.graph.node if n.op_type in WEIGHTED and len(n.input) > 1}
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    problems = [] if qdq else ["no QuantizeLinear/DequantizeLinear nodes: not a QDQ model"]
    for n in qdq:
        zp = inits.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        if zp is None:
            problems.append(f"{n.name}: no int8 zero point (the default is uint8)")
        elif zp.data_type != TensorProto.INT8:
            problems.append(f"{n.name}: zero point of type {TensorProto.DataType.Name(zp.data_type)}, not INT8")
        elif np.any(numpy_helper.to_array(zp) != 0):
            problems.append(f"{n.name}: zero point {numpy_helper.to_array(zp).ravel()[:3].tolist()} is not 0")
        if n.op_type == "DequantizeLinear" and n.input[0] in inits and n.output[0] in weights_of:
            scale, w = inits.get(n.input[1]), inits[n.input[0]]
            axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
            if scale is None or list(scale.dims) != [w.dims[axis]]:
                problems.append(f"{n.name}: weights not quantized per channel")
    return problems[:most] + ([f"... {len(problems) - most} more"] if len(problems) > most else [])
