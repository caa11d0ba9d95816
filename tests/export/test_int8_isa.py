"""INT8 figures do not depend on which x86 runs the suite: the TensorRT INT8 is gated by simulated
quantization (what TensorRT computes), the CPU INT8's weights are proved unable to saturate the
kernels of any x86 (a property of the file, checked on every CPU), and where this CPU's kernels
and the simulation differ, the report names the integer path and says why."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from testkit.export import check_artifact

from catdog.export.artifacts.formats import FORMATS
from catdog.export.int8.quantize import (
    INT8_FORMATS,
    Int8Quantizer,
    max_int8_weight,
    resolve_target,
    symmetric_qdq_problems,
)
from catdog.export.verify.parity import artifact_runs, eager_logits, run_chunked
from catdog.runtime.spine.errors import InputError
from catdog.runtime.spine.images import read_image
from catdog.runtime.spine.isa import (
    ARM_DOT,
    ARM_NEON,
    AVX2,
    AVX512,
    AVX512_VNNI,
    AVX_VNNI,
    SAFE_WEIGHT,
    SIMULATED,
    TARGETS,
    int8_path,
    kernels_label,
    saturates,
    saturation_warning,
    target_of,
)
from catdog.runtime.spine.metadata import from_metadata_map
from catdog.runtime.spine.preprocess import preprocess_batch
from catdog.train.models.checkpoint import build_model, load_checkpoint

ARCH = "efficientnet_lite0"  # the arch whose export builds the TensorRT INT8 (testkit.export.TRT_INT8_ARCHS)


@pytest.fixture(scope="module")
def lite(exported, photo_dir):
    out, report, ckpt_path = exported(ARCH)
    ckpt = load_checkpoint(ckpt_path)
    paths = sorted(photo_dir.iterdir())
    x = preprocess_batch([read_image(p) for p in paths], ckpt.spec)
    labels = np.array([("cat", "dog").index(p.name.split(".")[0]) for p in paths])
    return out, report, x, labels, eager_logits(build_model(ckpt), x)


@pytest.mark.parametrize("flags, machine, name", [
    ({"avx2", "avx512f", "avx512bw", "avx512_vnni"}, "x86_64", AVX512_VNNI),
    ({"avx2", "avx_vnni"}, "x86_64", AVX_VNNI),
    ({"avx2", "avx512f", "avx512bw"}, "x86_64", AVX512),
    ({"avx2", "fma"}, "x86_64", AVX2),
    ({"asimd", "asimddp"}, "aarch64", ARM_DOT),
    ({"asimd"}, "aarch64", ARM_NEON),
    (set(), "arm64", ARM_DOT),  # macOS: no /proc/cpuinfo; every Apple arm64 has the dot product
])
def test_int8_path_is_read_from_the_cpu_flags(flags, machine, name):
    assert int8_path(frozenset(flags), machine) == name


def test_only_pair_summing_paths_with_full_range_weights_saturate():
    assert saturates(AVX2, 127) and saturates(AVX512, 65)
    assert not saturates(AVX2, SAFE_WEIGHT)  # 7-bit weights: 2 * 255 * 64 fits int16
    for path in (AVX512_VNNI, AVX_VNNI, ARM_DOT, ARM_NEON):
        assert not saturates(path, 127)


def test_cpu_int8_weights_cannot_saturate_any_x86(lite):
    """The guard for every CPU class at once: a VNNI machine runs the CPU INT8 exactly whatever its
    weights, so only this static check stops a change that would saturate on AVX2 from landing."""
    out, report, *_ = lite
    model = onnx.load(str(out / "model.int8.onnx"))
    assert 0 < max_int8_weight(model) <= SAFE_WEIGHT
    meta = from_metadata_map({p.key: p.value for p in model.metadata_props})
    assert meta.extra["int8"]["max_int8_weight"] == max_int8_weight(model)
    assert meta.extra["int8"]["target_isa"] == "avx2" and meta.extra["int8"]["reduce_range"] is True
    assert "--int8-target avx2 (the default" in report.notes["int8"]


@pytest.mark.parametrize("path, target", [(AVX512_VNNI, "vnni"), (AVX_VNNI, "vnni"), (AVX512, "avx2"), (AVX2, "avx2"),
                                          (ARM_DOT, "arm"), (ARM_NEON, "arm"), ("riscv64", "avx2")])
def test_int8_target_follows_the_integer_path(path, target):
    assert target_of(path) == target


def test_int8_target_names_its_format_and_auto_is_this_cpu():
    assert set(INT8_FORMATS) == set(TARGETS)
    assert (INT8_FORMATS["avx2"].activations, INT8_FORMATS["avx2"].reduce_range) == ("uint8", True)
    assert (INT8_FORMATS["vnni"].activations, INT8_FORMATS["vnni"].reduce_range) == ("uint8", False)
    assert (INT8_FORMATS["arm"].activations, INT8_FORMATS["arm"].reduce_range) == ("int8", False)
    target, how = resolve_target("auto")
    assert target == target_of(int8_path()) and int8_path() in how
    assert resolve_target("vnni") == ("vnni", "given")
    with pytest.raises(InputError, match="unknown --int8-target 'avx3'; known: avx2, vnni, arm, auto"):
        resolve_target("avx3")


def test_a_vnni_int8_has_full_range_weights_and_warns_where_they_saturate(lite):
    """Built for VNNI: 8-bit weights (exact there); on AVX2/AVX-512 without VNNI the runtime's
    one-line warning names the target and the fix; on VNNI or ARM it says nothing."""
    out, _, x, *_ = lite
    fp32 = onnx.load(str(out / "model.onnx"))
    fmt = INT8_FORMATS["vnni"]
    with Int8Quantizer(fp32, x[:8], fmt.activations, reduce_range=fmt.reduce_range) as q:
        top = max_int8_weight(q.build())
    assert top > SAFE_WEIGHT  # 8-bit: the largest weight of a channel maps to 127
    record = {"for": "cpu", "target_isa": "vnni", "max_int8_weight": top}
    line = saturation_warning(record, "v/model.int8.onnx", AVX2)
    assert line and "--int8-target vnni" in line and "--int8-target avx2" in line and "AVX2" in line
    for path in (AVX512_VNNI, AVX_VNNI, ARM_DOT):
        assert saturation_warning(record, f"{path}/model.int8.onnx", path) is None


def test_trt_int8_is_gated_on_simulated_quantization_with_the_cpu_figures_beside(lite):
    out, report, *_ = lite
    rows = [a for s in report.parity_sets for a in s.artifacts if a.name == "int8-trt"]
    assert rows and all(SIMULATED in a.measured_on and "tensorrt" in a.measured_on for a in rows)
    assert all(a.passed for a in rows), [a.reasons for a in rows]
    assert all(a.cpu_kernels["int8_path"] == int8_path() for a in rows)
    cpu_rows = [a for s in report.parity_sets for a in s.artifacts if a.name == "int8"]
    assert all(int8_path() in a.measured_on and a.cpu_kernels is None for a in cpu_rows)
    md = (out / "export-report.md").read_text()
    assert f"CPU integer path: {int8_path()}" in md and "| measured on |" in md
    note = next(n for n in report.int8_notes() if n.startswith("int8-trt:"))
    assert int8_path() in note and "top-1 agreement" in note


def test_simulation_and_cpu_kernels_differ_only_where_the_isa_saturates(lite):
    """The same gate under both references on this CPU: equal answers, unless this CPU's path
    saturates the artifact's weights, and then the report explains the difference."""
    out, report, x, _, ref = lite
    for name in ("int8", "int8-trt"):
        fmt, path = FORMATS[name], out / FORMATS[name].filename
        runs = artifact_runs(fmt, path)
        kernels = runs.kernels or runs.run
        from catdog.export.verify.parity import artifact_runner

        simulated = run_chunked(artifact_runner(fmt, path, simulate_qdq=True), x)
        got = run_chunked(kernels, x)
        top = max_int8_weight(onnx.load(str(path)))
        if saturates(int8_path(), top):
            assert name == "int8-trt"  # the CPU INT8 never may (test above)
            note = next(n for n in report.int8_notes() if n.startswith(f"{name}:"))
            assert "saturates" in note and str(top) in note
        else:
            assert np.array_equal(simulated.argmax(1), got.argmax(1)), name
            assert np.max(np.abs(simulated - got)) < 0.5, name  # requantization rounding, not saturation
        assert np.mean(simulated.argmax(1) == ref.argmax(1)) >= 0.99, name


def test_a_broken_symmetric_artifact_fails_the_trt_gate(lite, tmp_path):
    """Still symmetric (TensorRT would take it), but wrong: the simulated gate must refuse it."""
    out, _, x, labels, ref = lite
    model = onnx.load(str(out / "model.int8-trt.onnx"))
    inits = {t.name: t for t in model.graph.initializer}
    convs = {n.input[1] for n in model.graph.node if n.op_type == "Conv"}
    dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.output[0] in convs
          and n.input[0] in inits]
    for n in dq[len(dq) // 2:]:  # the deeper half of the convolutions: weights negated
        w = inits[n.input[0]]
        w.CopyFrom(numpy_helper.from_array((-numpy_helper.to_array(w).astype(np.int16)).clip(-127, 127)
                                           .astype(np.int8), w.name))
    assert symmetric_qdq_problems(model) == []
    path = tmp_path / "model.int8-trt.onnx"
    path.write_bytes(model.SerializeToString())
    result = check_artifact(FORMATS["int8-trt"], path, ref, x, labels, {})
    assert SIMULATED in result.measured_on
    assert not result.passed and result.reasons[0].startswith("int8-trt: top1_agreement")
    assert check_artifact(FORMATS["int8-trt"], out / "model.int8-trt.onnx", ref, x, labels, {}).passed


def _vnni_int8(out, x, path):
    """A real --int8-target vnni model (8-bit weights) of the lite export, with export's int8 record."""
    from catdog.export.builders.meta import read_onnx_metadata, set_onnx_metadata

    fmt = INT8_FORMATS["vnni"]
    with Int8Quantizer(onnx.load(str(out / "model.onnx")), x[:8], fmt.activations, reduce_range=fmt.reduce_range) as q:
        model = q.build()
    meta = read_onnx_metadata(out / "model.int8.onnx")
    record = {"for": "cpu", "target_isa": "vnni", "reduce_range": False, "max_int8_weight": max_int8_weight(model)}
    path.write_bytes(set_onnx_metadata(model, meta.with_(extra={**meta.extra, "int8": record})).SerializeToString())
    return path


def test_a_full_range_cpu_int8_is_gated_for_its_target_where_this_cpu_would_saturate(lite, tmp_path):
    """Gating a VNNI model on AVX2's kernels would measure this machine's saturation, not what a
    VNNI CPU computes: where the weights can saturate, the gate runs simulated quantization (and
    the kernels' figures go beside it); the 7-bit model is gated on the kernels everywhere."""
    from catdog.export.verify.parity import simulated_target

    out, _, x, *_ = lite
    vnni = _vnni_int8(out, x, tmp_path / "vnni.int8.onnx")
    fmt = FORMATS["int8"]
    assert simulated_target(fmt, vnni, AVX2) == simulated_target(fmt, vnni, AVX512) == "--int8-target vnni"
    for here in (AVX512_VNNI, AVX_VNNI, ARM_DOT, ARM_NEON):
        assert simulated_target(fmt, vnni, here) is None
    for here in (AVX2, AVX512, AVX512_VNNI, ARM_DOT):
        assert simulated_target(fmt, out / "model.int8.onnx", here) is None
    assert simulated_target(FORMATS["int8-trt"], out / "model.int8-trt.onnx", AVX512_VNNI) == "tensorrt"
    runs = artifact_runs(fmt, vnni)
    assert (runs.kernels is not None) == saturates(int8_path(), SAFE_WEIGHT + 1)
    assert (SIMULATED in runs.measured_on) == (runs.kernels is not None)


@pytest.mark.parametrize("here, simulated", [(AVX2, True), (AVX512_VNNI, False)])
def test_a_vnni_int8_is_chosen_on_what_its_target_computes(lite, monkeypatch, tmp_path, here, simulated):
    """The INT8 choices for --int8-target vnni are scored by simulated quantization on a CPU whose
    kernels would saturate its weights, else on this CPU's kernels (the integer path is set; the
    builds and sessions are real)."""
    import catdog.runtime.spine.isa as isa
    from catdog.export.artifacts.formats import BuildContext
    from catdog.export.builders.meta import read_onnx_metadata
    from catdog.export.int8.sensitivity import SensitivityConfig

    out, _, x, *_ = lite
    real = kernels_label()  # the kernels a run that is not simulated really takes, whatever `here` says
    monkeypatch.setattr(isa, "int8_path", lambda *a, **k: here)
    meta = read_onnx_metadata(out / "model.onnx")
    ctx = BuildContext(model=None, example=None, check_inputs=None, meta=meta, spec=meta.spec, opset=0, calib=x[:8],
                       calib_method="minmax", int8_target="vnni", held_out=x,
                       int8_sensitivity=SensitivityConfig(enabled=False))
    FORMATS["int8"].builder(ctx, tmp_path / "model.int8.onnx", meta, onnx.load(str(out / "model.onnx")))
    reference = SIMULATED if simulated else real
    assert ctx.details["int8_choice"]["how"].endswith(f"measured on {reference}")
    assert ctx.details["int8"]["target_isa"] == "vnni" and ctx.details["int8"]["max_int8_weight"] > SAFE_WEIGHT
