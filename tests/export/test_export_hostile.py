"""catdog-export never replaces a read-only output, and a failed ONNX export leaves nothing behind in
the temp folder nor on the terminal but its one line (issue 32 #20 and "also seen"). Real
checkpoints, the real exporter, the CLI in-process."""

from __future__ import annotations

import stat
import tempfile

import pytest
import torch
from testkit.export import cli

from catdog.export.builders.onnx_export import export_onnx
from catdog.runtime.spine.errors import ModelError

ARCH = "efficientnet_lite0"


@pytest.mark.parametrize("name", ["model.onnx", "export-report.json"])
def test_a_read_only_output_is_refused_before_any_work_and_kept(ckpt_factory, photo_dir, tmp_path, capfd, name):
    """#20: a 0444 model.onnx was replaced by a new 0644 file (the rename went around its mode)."""
    out = tmp_path / "e"
    out.mkdir()
    kept = out / name
    kept.write_text("OLD\n")
    kept.chmod(0o444)
    try:
        code = cli("--ckpt", ckpt_factory(ARCH), "--out", out, "--parity", photo_dir, "--labels-from-names",
                   "--latency-runs", "1")
        err = capfd.readouterr().err.strip().splitlines()
        assert code == 2 and "Traceback" not in "\n".join(err), err
        assert err[-1].startswith("error: ") and str(kept) in err[-1] and "is read-only" in err[-1], err
        assert "chmod u+w" in err[-1]
        assert stat.S_IMODE(kept.stat().st_mode) == 0o444 and kept.read_text() == "OLD\n"
        assert sorted(p.name for p in out.iterdir()) == [name]  # nothing else was written either
    finally:
        kept.chmod(0o644)


def test_an_output_that_is_the_checkpoint_is_refused(ckpt_factory, photo_dir, tmp_path, capfd):
    """The checkpoint is an input: a checkpoint kept as --out/model.ts would be replaced by the export."""
    out = tmp_path / "e"
    out.mkdir()
    ckpt = out / "model.ts"
    ckpt.write_bytes(ckpt_factory(ARCH).read_bytes())
    before = ckpt.read_bytes()
    assert cli("--ckpt", ckpt, "--out", out, "--parity", photo_dir, "--labels-from-names") == 2
    last = capfd.readouterr().err.strip().splitlines()[-1]
    assert "is one of the inputs" in last and str(ckpt) in last, last
    assert ckpt.read_bytes() == before and sorted(p.name for p in out.iterdir()) == ["model.ts"]


class _Untraceable(torch.nn.Module):
    """A real module that fails while being traced, before the exporter writes a byte."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise ValueError("this model cannot be traced")


def test_a_failed_onnx_export_leaves_no_empty_log_and_prints_no_graph(tmp_path, monkeypatch, capfd):
    """Also seen: each failed export left a 0-byte /tmp/catdog-onnx-export-*.log, while the IR graph
    the log was meant to hold went to the terminal (the exporter prints it on stdout)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where this process's temp files go
    capfd.readouterr()
    with pytest.raises(ModelError) as e:  # nothing written by the exporter: no log kept, none named
        export_onnx(_Untraceable().eval(), torch.zeros(1, 3, 32, 32))
    left = list(tmp_path.iterdir())
    assert "exporter log" not in str(e.value) and left == [], (str(e.value), left)

    from catdog.train.models import get_model

    with pytest.raises(ModelError) as e:  # torchvision's alexnet at 64 px: its 6x6 pool has no ONNX form
        export_onnx(get_model("alexnet", 2).eval(), torch.zeros(1, 3, 64, 64))
    out = capfd.readouterr()
    assert "Torch IR graph" not in out.out + out.err, (out.out[-500:], out.err[-500:])
    [log] = list(tmp_path.iterdir())  # the graph is in the log the message names, for --debug
    assert str(log) in str(e.value) and "Torch IR graph" in log.read_text()
