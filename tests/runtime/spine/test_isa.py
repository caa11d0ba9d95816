"""The runtime's INT8 saturation warning: said once per model file, only where the CPU's integer
path adds product pairs in int16 and the model's weights are wide enough to overflow it."""

from __future__ import annotations

from catdog.runtime.spine.isa import AVX2, AVX512_VNNI, SAFE_WEIGHT, saturation_warning


def test_full_range_weights_on_avx2_are_warned_once_naming_the_fix():
    trt = {"for": "tensorrt", "max_int8_weight": 127}
    line = saturation_warning(trt, "a/model.int8-trt.onnx", AVX2)
    assert line and "a/model.int8-trt.onnx" in line and "AVX2" in line and "catdog-export --int8" in line
    assert saturation_warning(trt, "a/model.int8-trt.onnx", AVX2) is None  # once per file
    assert saturation_warning(trt, "b/model.int8-trt.onnx", AVX2)


def test_no_warning_where_nothing_can_saturate():
    assert saturation_warning({"for": "tensorrt", "max_int8_weight": 127}, "c.onnx", AVX512_VNNI) is None
    assert saturation_warning({"for": "cpu", "max_int8_weight": SAFE_WEIGHT}, "d.onnx", AVX2) is None
    assert saturation_warning({"for": "cpu"}, "e.onnx", AVX2) is None  # an older export: nothing known
    assert saturation_warning(None, "f.onnx", AVX2) is None
