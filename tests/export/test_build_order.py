"""What an export builds and in what order: INT8 is asked for one way (ExportOptions.int8_for, which
--int8 and --int8-for spell), and every artifact is built after the artifact whose graph it derives
from (`needs`), read by name from the table, never by the table's row order."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from testkit.export import cli

from catdog.export.artifacts.build import build_all, build_order, with_needs
from catdog.export.artifacts.formats import ALWAYS, FORMATS, BuildContext
from catdog.export.options import ExportOptions, int8_targets
from catdog.export.pipeline import artifact_names
from catdog.runtime.spine.errors import InputError, ModelError
from catdog.runtime.spine.metadata import ModelMetadata
from catdog.runtime.spine.spec import PreprocessSpec

DERIVED = ("int8", "int8-trt", "fp16", "baked")  # made from the fp32 ONNX graph


def test_every_derived_artifact_names_the_graph_it_is_made_from():
    assert {n: f.needs for n, f in FORMATS.items()} == {"torchscript": None, "onnx": None, **dict.fromkeys(DERIVED,
                                                                                                          "onnx")}


def test_every_export_is_built_in_the_order_it_always_was():
    """The table's order where nothing forces another: the report lists the artifacts as before."""
    assert build_order(FORMATS) == list(FORMATS)
    assert build_order(ALWAYS) == ["torchscript", "onnx"]
    assert build_order({*ALWAYS, "baked", "fp16"}) == ["torchscript", "onnx", "fp16", "baked"]


def test_an_artifact_asked_for_alone_gets_what_it_needs_built_first():
    assert build_order(["fp16"]) == ["onnx", "fp16"]
    assert build_order(["baked", "int8-trt"]) == ["onnx", "int8-trt", "baked"]
    assert with_needs(["int8"]) == {"int8", "onnx"}


def test_the_order_is_read_by_name_not_by_the_rows_position():
    backwards = dict(reversed(list(FORMATS.items())))  # every derived row before the one it needs
    assert build_order(["fp16", "baked"], backwards) == ["onnx", "baked", "fp16"]
    assert build_order(backwards, backwards) == ["onnx", "baked", "fp16", "int8-trt", "int8", "torchscript"]


def test_unknown_names_and_cycles_are_clear_errors():
    with pytest.raises(InputError, match="unknown artifact 'gif'; known: torchscript, onnx, int8"):
        build_order(["gif"])
    cyclic = {**FORMATS, "onnx": replace(FORMATS["onnx"], needs="fp16")}
    with pytest.raises(ModelError, match=r"artifact 'fp16' derives from itself: fp16 -> onnx -> fp16"):
        build_order(["fp16"], cyclic)


def _tiny_context() -> BuildContext:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()
    spec = PreprocessSpec(size=16, resize=16)
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    return BuildContext(model=model, example=torch.from_numpy(x[:1]), check_inputs=x,
                        meta=ModelMetadata(classes=("cat", "dog"), spec=spec, arch="tiny"), spec=spec, opset=17)


def test_a_list_out_of_order_is_refused_before_anything_is_built(tmp_path):
    with pytest.raises(ModelError, match="fp16 derives from onnx, which is not built before it"):
        build_all(["fp16", "onnx"], _tiny_context(), lambda name: tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_each_builder_gets_the_graph_it_names_even_from_a_backwards_table(tmp_path):
    """A real build of a tiny model: fp16 and baked are made from the fp32 graph that onnx built."""
    backwards = dict(reversed(list(FORMATS.items())))
    said: list[str] = []
    order = build_order(["fp16", "baked"], backwards)
    build_all(order, _tiny_context(), lambda name: tmp_path / name, said.append, backwards)
    assert said == ["building model.onnx", "building model.baked.onnx", "building model.fp16.onnx"]
    fp32, fp16, baked = (onnx.load(str(tmp_path / n)) for n in ("model.onnx", "model.fp16.onnx", "model.baked.onnx"))
    assert {i.data_type for i in fp16.graph.initializer} >= {onnx.TensorProto.FLOAT16}
    assert baked.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    weights = {i.name for i in fp32.graph.initializer}
    assert weights and weights <= {i.name for i in baked.graph.initializer}  # the fp32 graph, inside


def test_int8_is_asked_for_one_way_and_both_flags_spell_it():
    assert int8_targets(True, []) == ("cpu",)  # --int8
    assert int8_targets(False, ["cpu"]) == ("cpu",)  # --int8-for cpu: the same request
    assert int8_targets(True, ["tensorrt", "cpu"]) == ("cpu", "tensorrt")  # --int8 first, repeats dropped
    assert int8_targets(False, ["tensorrt", "cpu", "tensorrt"]) == ("tensorrt", "cpu")
    opts = ExportOptions(ckpt=Path("best.pth"), out=Path("out"))
    assert artifact_names(opts) == ["torchscript", "onnx"]
    both = replace(opts, int8_for=("cpu", "tensorrt"), fp16=True, bake=True)
    assert artifact_names(both) == list(FORMATS)
    assert artifact_names(replace(opts, int8_for=("tensorrt",))) == ["torchscript", "onnx", "int8-trt"]


@pytest.mark.parametrize("flags, flag", [(["--int8"], "--int8"), (["--int8-for", "cpu"], "--int8"),
                                         (["--int8-for", "tensorrt"], "--int8-for tensorrt"),
                                         (["--int8-for", "tensorrt", "--int8"], "--int8"),
                                         (["--int8-for", "tensorrt", "--int8-for", "cpu"], "--int8-for tensorrt")])
def test_int8_without_calibration_names_the_flag(tmp_path, capfd, flags, flag):
    """Refused before the checkpoint is read; --int8-for cpu is --int8, and says so."""
    assert cli("--ckpt", tmp_path / "best.pth", "--out", tmp_path / "out", *flags) == 2
    assert capfd.readouterr().err.strip().splitlines()[-1] == (
        f"error: {flag} needs calibration images: pass --calib DIR (real photos, e.g. your training folder)")
