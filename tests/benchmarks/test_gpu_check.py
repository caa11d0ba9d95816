"""scripts/gpu-check.sh where there is no CUDA GPU (the test hides any with CUDA_VISIBLE_DEVICES, so
this holds on a GPU box too): nothing runs, each GPU step is listed as skipped with the reason, exit
2, no report folder. Its agreement helper on real files (the summary's test is in test_run.py, on
that module's real benchmark report)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parents[2]
HELPER = [sys.executable, str(REPO / "scripts" / "gpu_check.py")]


def test_without_a_cuda_gpu_it_says_so_and_runs_nothing(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "REPORTS": str(tmp_path / "reports"),
           "WORK": str(tmp_path / "work"), "PYTHON": sys.executable}
    r = subprocess.run(["bash", str(REPO / "scripts" / "gpu-check.sh")], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "no CUDA GPU here: torch: " in r.stderr and "run this on a CUDA machine" in r.stderr
    skipped = [ln for ln in r.stdout.splitlines() if ln.startswith("SKIP")]
    assert len(skipped) == 5 and all(ln.endswith(": no CUDA GPU") for ln in skipped)
    assert any("torchrun NCCL" in ln for ln in skipped) and any("TensorRT" in ln for ln in skipped)
    assert not (tmp_path / "reports").exists() and not (tmp_path / "work").exists()


def _jsonl(path: Path, labels: dict[str, str]) -> Path:
    path.write_text("".join(json.dumps({"source": k, "label": v, "score": 0.9}) + "\n" for k, v in labels.items()))
    return path


def test_agreement_counts_labels_as_the_reference(tmp_path):
    ref = _jsonl(tmp_path / "cpu.jsonl", {"a.jpg": "cat", "b.jpg": "dog", "c.jpg": "dog", "d.jpg": "cat"})
    got = _jsonl(tmp_path / "trt.jsonl", {"a.jpg": "cat", "b.jpg": "cat", "c.jpg": "dog", "d.jpg": "cat"})
    out = subprocess.run([*HELPER, "agreement", str(ref), str(got)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "3/4 labels as cpu.jsonl (75.00%)"
