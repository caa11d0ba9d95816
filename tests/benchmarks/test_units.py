"""The pieces under the report: statistics, the interleaved loop, doctor, the labelled photo listing."""

import numpy as np
import pytest
from typer.testing import CliRunner

from catdog.benchmarks.cli import app
from catdog.benchmarks.common.config import LoopConfig
from catdog.benchmarks.common.timing import interleaved, latency_stats
from catdog.benchmarks.grid.artifacts import balanced, discover, list_photos
from catdog.runtime.spine.errors import DataError

runner = CliRunner()


def test_latency_stats_follow_the_conventions():
    s = latency_stats([0.001 * i for i in range(1, 101)], batch=4)  # 1..100 ms
    assert s.n == 100 and s.min_ms == pytest.approx(1) and s.max_ms == pytest.approx(100)
    assert s.p50_ms == pytest.approx(50.5) and s.p90_ms == pytest.approx(90.1) and s.p99_ms == pytest.approx(99.01)
    assert s.mean_ms == pytest.approx(50.5) and s.std_ms == pytest.approx(np.std(np.arange(1, 101), ddof=1))
    assert s.throughput_ips == pytest.approx(4 / 0.0505)


def test_interleaved_runs_round_robin_blocks():
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in "ABC"}
    samples = interleaved(fns, LoopConfig(warmup=1, iters=4, block=2))
    assert calls[:3] == ["A", "B", "C"]  # warm-up, one each
    assert "".join(calls[3:]) == "AABBCCAABBCC"  # blocks alternate: drift hits all equally
    assert all(len(v) == 4 and min(v) >= 0 for v in samples.values())


def test_interleaved_by_seconds():
    samples = interleaved({"A": lambda: None}, LoopConfig(warmup=0, iters=None, seconds=0.01, block=50))
    assert len(samples["A"]) >= 50


def test_loop_config_rejects_bad_values():
    with pytest.raises(ValueError):
        LoopConfig(iters=None, seconds=None)
    with pytest.raises(ValueError):
        LoopConfig(iters=0)


def test_doctor_proves_cpu_by_a_real_inference():
    res = runner.invoke(app, ["doctor", "--providers", "cpu"])
    assert res.exit_code == 0, res.output
    assert "OK    cpu" in res.output and "output [1, 2]" in res.output
    assert "OpenCV" in res.output and "GStreamer" in res.output and "Cameras:" in res.output


def test_doctor_json_and_a_missing_provider_error():
    import json

    from catdog.runtime.engine.session import PROVIDERS, available_providers

    res = runner.invoke(app, ["doctor", "--json", "--providers", "cpu"])  # a GPU box's other rows: gpu-check.sh
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["providers"][0]["provider"] == "cpu" and d["providers"][0]["ok"] is True
    missing = next(p for p in PROVIDERS if p not in available_providers())  # cuda on the CPU wheel
    res = runner.invoke(app, ["doctor", "--providers", missing])
    assert res.exit_code == 2 and f"provider '{missing}' is not available" in res.output


def test_doctor_with_a_model_file(tiny_export):
    res = runner.invoke(app, ["doctor", "--providers", "cpu", "--model", str(tiny_export / "model.baked.onnx")])
    assert res.exit_code == 0 and "OK    cpu" in res.output


def test_photos_from_kaggle_names_and_class_folders(tmp_path, data_dir, labeled_dir, tiny_export):
    arts, _ = discover([tiny_export / "model.onnx"])  # classes ("cat", "dog"): the listing's label order
    photos = list_photos(labeled_dir, arts)
    assert [photos.classes[y] for y in photos.labels] == ["cat"] * 3 + ["dog"] * 3
    assert [photos.classes[y] for y in balanced(photos, 4).labels] == ["cat", "cat", "dog", "dog"]
    # tests/data holds dog.jpg and cmyk.jpg (no label.index name): ambiguous, said, not guessed
    with pytest.raises(DataError, match=r"unknown layout: 2 image\(s\) like 'cmyk\.jpg'"):
        list_photos(data_dir, arts)
    (tmp_path / "a" / "cat" / "deeper").mkdir(parents=True)  # class folders are read recursively
    (tmp_path / "a" / "cat" / "deeper" / "1.jpg").write_bytes((data_dir / "cat.93.jpg").read_bytes())
    assert list_photos(tmp_path / "a", arts).samples == ((str(tmp_path / "a" / "cat" / "deeper" / "1.jpg"), 0),)
    (tmp_path / "a" / "cat.2.jpg").write_bytes((data_dir / "cat.93.jpg").read_bytes())
    with pytest.raises(DataError, match="mixes class folders"):  # class folders no longer silently win
        list_photos(tmp_path / "a", arts)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "photo.jpg").write_bytes(b"x")
    with pytest.raises(DataError, match="neither named"):
        list_photos(tmp_path / "b", arts)
    (tmp_path / "c" / "bird").mkdir(parents=True)
    (tmp_path / "c" / "bird" / "1.jpg").write_bytes((data_dir / "cat.93.jpg").read_bytes())
    with pytest.raises(DataError, match="but the model has 2"):
        list_photos(tmp_path / "c", arts)


def test_hidden_files_are_not_photos(junk_dir, labeled_dir, tiny_export):
    arts, _ = discover([tiny_export / "model.onnx"])
    photos = list_photos(junk_dir, arts)
    want = sorted(p.name for p in labeled_dir.glob("*.jpg"))
    assert sorted(p.name for p in photos.paths) == want and len(want) == 6
    assert sorted(p.name for p in balanced(photos, 100).paths) == want


def test_onnx_rows_on_a_gpu_only_torch_can_use_are_marked_missing(tiny_export, monkeypatch):
    # On a box where torch sees a GPU but onnxruntime has no CUDA provider, "cuda" is offered for
    # the torch artifacts; the ONNX rows must say their ORT-GPU figure is missing, not vanish.
    # That onnxruntime is the CPU wheel; with onnxruntime-gpu installed the test makes it one.
    from catdog.benchmarks.grid.artifacts import input_images, spec_of
    from catdog.benchmarks.grid.measure import Grid, run_grid
    from catdog.runtime.engine import session

    monkeypatch.setattr(session, "available_providers", lambda: ["cpu"])

    arts, _ = discover([tiny_export / "model.onnx"])
    images, _ = input_images(None, 2)
    rows = run_grid(arts, Grid(("cuda",), (1, 2), (None,), LoopConfig(0, 1)), images, spec_of(arts))
    assert [(r.batch, r.status) for r in rows] == [(1, "missing"), (2, "missing")]
    assert "install onnxruntime-gpu" in (rows[0].note or "")


def test_torch_eager_follows_an_exports_flip_averaging(tmp_path):
    """A --tta-flip export computes mean(logits(x), logits(mirror x)); the torch-eager row built from
    the plain checkpoint must compute the same, or agreement would compare two different functions."""
    import torch

    from catdog.benchmarks.doctor import tiny_spec
    from catdog.benchmarks.grid.runners import make_runner
    from catdog.export.builders.tta import with_tta
    from catdog.runtime.spine.metadata import METADATA_FILE, ModelMetadata
    from catdog.train.models import get_model
    from catdog.train.models.checkpoint import build_model, load_checkpoint, save_checkpoint

    torch.manual_seed(0)  # resnet18 at random init: its logits depend on the input (and on its mirror image)
    save_checkpoint(tmp_path / "best.pth", arch="resnet18", arch_kwargs={}, classes=["cat", "dog"],
                    spec=tiny_spec(32), state_dict=get_model("resnet18", 2).eval().state_dict())
    ckpt = tmp_path / "best.pth"
    model = with_tta(build_model(load_checkpoint(ckpt)).eval(), True)
    meta = ModelMetadata(classes=("cat", "dog"), spec=tiny_spec(32), arch="resnet18", extra={"tta": "hflip"})
    ts = tmp_path / "model.ts"
    traced = torch.jit.trace(model, torch.zeros(1, 3, 32, 32))
    torch.jit.save(traced, str(ts), _extra_files={METADATA_FILE: meta.to_json()})
    arts, notes = discover([ts], torch_ckpt=ckpt)
    eager = next(a for a in arts if a.name == "torch-eager")
    assert eager.meta.extra["tta"] == "hflip" and any("test-time averaging" in n for n in notes)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    want = make_runner(next(a for a in arts if a.kind == "torchscript"), "cpu", 1).run(x)
    assert np.abs(make_runner(eager, "cpu", 1).run(x) - want).max() < 1e-5
    plain, _ = discover([], torch_ckpt=ckpt)  # no TTA export beside it: plain eager
    assert "tta" not in plain[0].meta.extra and np.abs(make_runner(plain[0], "cpu", 1).run(x) - want).max() > 1e-6
