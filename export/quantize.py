"""Static INT8 (QDQ, per-channel int8 weights) with onnxruntime.quantization, calibrated on real
images that went through the spine's preprocess. quant_pre_process (symbolic shape inference +
ORT graph optimization) runs first, as the ORT docs recommend for QDQ models."""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import numpy as np
import onnx

from catdog.export.options import ExportOptions
from catdog.runtime.errors import InputError

# --calib-method NAME -> onnxruntime CalibrationMethod attribute name.
CALIB_METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
DEFAULT_CALIB_METHOD = ExportOptions.calib_method
# --int8-activations NAME -> onnxruntime QuantType. Weights are always int8. uint8 activations
# (U8S8) is what ORT's x86 AVX2 kernels are fast at: on this 2-core EPYC (AVX2, no VNNI) the
# shipped model ran 193 img/s U8S8 vs 124 S8S8 vs 131 fp32 (batch 16). Those kernels (VPMADDUBSW)
# add pairs of u8*s8 products in int16, which saturates with full 8-bit weights: U8S8 therefore
# quantizes weights to 7 bits (reduce_range), as the ORT docs advise for non-VNNI x86. Without it a
# mobilenet_v3_small fell to 91.7% top-1 agreement; with it 100% (S8S8: 100%, but 1.5x slower).
ACTIVATION_TYPES = {"uint8": "QUInt8", "int8": "QInt8"}
DEFAULT_ACTIVATIONS = ExportOptions.int8_activations


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


def boundary_nodes(model: onnx.ModelProto) -> list[str]:
    """The stem Conv (fed by the graph input) and the classifier Gemm/MatMul (producing the graph
    output). They stay fp32: quantizing the 3-channel normalized input costs the most accuracy
    (efficientnet_lite0 on the 400 test photos: 97.25% top-1 agreement with every layer INT8,
    99.0% with the stem in fp32, 99.25% with stem + classifier and percentile calibration), while
    both layers together are ~1% of the FLOPs."""
    inputs = {i.name for i in model.graph.input}
    outputs = {o.name for o in model.graph.output}
    stem = [n.name for n in model.graph.node if n.op_type == "Conv" and n.input[0] in inputs]
    head = [n.name for n in model.graph.node if n.op_type in ("Gemm", "MatMul") and set(n.output) & outputs]
    return stem + head


def quantize_int8(fp32: onnx.ModelProto, calib: np.ndarray, method: str = DEFAULT_CALIB_METHOD,
                  activations: str = DEFAULT_ACTIVATIONS) -> onnx.ModelProto:
    """fp32 model + calibration batch (N,3,S,S float32 from preprocess) -> QDQ INT8 model, with
    the boundary_nodes() kept in fp32."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    calibrate_method = calibration_method(method)
    act_type = activation_type(activations)
    if len(calib) == 0:
        raise InputError("INT8 calibration needs at least one readable image in --calib")
    # The quantizer works on files; a private temp dir keeps them out of the output folder.
    with tempfile.TemporaryDirectory(prefix="catdog-int8-") as tmp:
        src, pre, dst = Path(tmp, "fp32.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(fp32.SerializeToString())
        # The calibrators print progress lines to stdout; the CLI's stdout is the report.
        with contextlib.redirect_stdout(io.StringIO()):
            quant_pre_process(str(src), str(pre))
            keep_fp32 = boundary_nodes(onnx.load(str(pre), load_external_data=False))
            quantize_static(
                str(pre),
                str(dst),
                _reader(calib, fp32.graph.input[0].name),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=act_type,
                weight_type=QuantType.QInt8,
                reduce_range=activations == "uint8",
                calibrate_method=calibrate_method,
                nodes_to_exclude=keep_fp32,
                extra_options={"CalibStridedMinMax": _stride(len(calib))},
            )
        return onnx.load(str(dst))


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
