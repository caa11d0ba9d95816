"""`catdog-runtime SOURCE --ray`: real Ray (2 CPUs), real onnxruntime sessions in real actors, real
JPEGs. Results equal the single-process run's; a job killed with kill -9 or Ctrl-C halfway resumes
with no row missing and none twice."""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from testkit.procs import interruptible
from testkit.runtime import modules_after_a_photo_run
from testkit.scale import BROKEN, CLI, RAY_ENV, RAY_TIMEOUT, copies, parts, read_rows, run_cli, wait_for_parts

from catdog.runtime.cli import ray_alone
from catdog.runtime.scale.driver import RESERVE_CPUS, make_plan
from catdog.runtime.scale.parts import remaining
from catdog.runtime.scale.sources import list_sources
from catdog.runtime.spine.errors import ClusterError

FIELDS = ["source", "label", "score", "probs", "error"]


def _plan(cpus, gpus=0.0, inputs=4000, **kw):
    args = {"actors": None, "threads": None, "workers": 2, "batch": 16, "provider": "cpu", "gpus_per_actor": 1.0}
    return make_plan(cpus, gpus, inputs, **{**args, **kw})


@pytest.mark.parametrize("cpus,actors,threads", [(2, None, None), (2, 2, 1), (2, 1, 2), (2, 4, 1), (16, None, 2)])
def test_the_pool_never_reserves_every_cpu(cpus, actors, threads):
    """On 2 CPUs a pool of two 1-CPU actors starved Ray Data and hung: reservations stay fractional."""
    p = _plan(cpus, actors=actors, threads=threads)
    assert p.actors == (actors or cpus // (threads or 1))
    assert p.threads == (threads or 1)
    assert p.actors * p.num_cpus <= cpus - RESERVE_CPUS + 1e-9
    assert p.block_rows % 16 == 0 and 16 <= p.block_rows <= 1024


def test_plan_blocks_and_gpus():
    assert _plan(2).block_rows == 256  # 4000 inputs, 2 actors: 8 blocks each
    assert _plan(2, inputs=10).actors == 1  # one block: a second actor would only cost start-up
    g = _plan(8, gpus=2, provider="cuda", gpus_per_actor=0.5)
    assert (g.actors, g.num_gpus) == (4, 0.5)
    with pytest.raises(ClusterError, match="has 0 GPU"):
        _plan(8, gpus=0, provider="cuda")
    with pytest.raises(ClusterError, match="wait for them forever"):
        _plan(8, gpus=2, provider="cuda", actors=3)


def test_resume_counts_repeated_inputs():
    assert remaining(["a", "b", "a", "c", "a"], Counter({"a": 2, "c": 1})) == ["b", "a"]


def test_ray_alone_means_a_local_ray():
    assert ray_alone(["x", "--ray"]) == ["x", "--ray", "local"]
    assert ray_alone(["x", "--ray", "--out", "o"]) == ["x", "--ray", "local", "--out", "o"]
    assert ray_alone(["x", "--ray", "head:6379"]) == ["x", "--ray", "head:6379"]


def test_sources_list_file_and_file_uri(tmp_path, photos):
    d = tmp_path / "imgs"
    d.mkdir()
    for p in photos[:3]:
        (d / p.name).write_bytes(p.read_bytes())
    (d / "._cat.1.jpg").write_bytes(b"")  # a macOS resource fork is never an image
    (d / "notes.txt").write_text("x")
    lst = tmp_path / "list.txt"
    lst.write_text(f"# photos\nimgs/{photos[0].name}\n\n{d / photos[1].name}\nfile://{d / photos[2].name}\n")
    assert list_sources(str(lst)) == [str(d / photos[0].name), str(d / photos[1].name),
                                      f"file://{d / photos[2].name}"]
    assert list_sources(f"file://{d}") == [f"file://{d / p.name}" for p in sorted(photos[:3])]
    assert list_sources(str(d)) == [str(d / p.name) for p in sorted(photos[:3])]


def test_flags_that_do_not_apply_fail_before_ray(tmp_path, dog_jpg):
    for args, says in ((["--out", tmp_path / "o"], "go with --ray"), (["--ray"], "--ray needs --out"),
                       (["--ray", "--out", tmp_path / "o", "--json"], "--json: not for --ray")):
        r = run_cli(dog_jpg, *args, timeout=60)
        assert r.returncode == 2 and r.stderr.startswith("error: ") and says in r.stderr, r.stderr
        assert "Traceback" not in r.stderr


def test_single_process_never_imports_ray(dog_jpg):
    assert not modules_after_a_photo_run(dog_jpg) & {"ray", "pyarrow"}


def _assert_same_as(reference: dict[str, dict], row: dict, name: str) -> None:
    """A Ray row equals the single-process JSON line for the same photo, bit for bit."""
    ref = reference[name]
    if "error" in ref:
        assert row["label"] is None and row["score"] is None and row["probs"] is None
        assert row["error"] is not None and Path(row["source"]).name in row["error"]
    else:
        assert row["error"] is None
        assert (row["label"], row["score"], row["probs"]) == (ref["label"], ref["score"], ref["probs"]), name


@pytest.mark.slow
def test_local_ray_gives_the_single_process_results_and_error_rows(messy, reference, tmp_path):
    out = tmp_path / "results.parquet"
    # --batch 4: several blocks, so both actors of the 2-CPU local Ray classify.
    r = run_cli(messy, "--ray", "--out", out, "--batch", "4")
    assert r.returncode == 1, r.stderr  # some inputs failed; the job itself did not
    assert "Traceback" not in r.stderr and "2 x (1 onnxruntime" in r.stderr, r.stderr[-3000:]
    rows = read_rows(out)
    assert list(rows[0]) == FIELDS
    assert sorted(os.path.basename(x["source"]) for x in rows) == sorted(reference)
    for row in rows:
        assert os.path.isabs(row["source"])
        _assert_same_as(reference, row, os.path.basename(row["source"]))
    errors = {os.path.basename(x["source"]): x["error"] for x in rows if x["error"]}
    assert set(errors) == set(BROKEN)
    assert all(BROKEN[name] in msg for name, msg in errors.items()), errors
    # The same OUT again without --resume is refused, not overwritten or appended to.
    again = run_cli(messy, "--ray", "--out", out, timeout=60)
    assert again.returncode == 2 and "--resume" in again.stderr and len(read_rows(out)) == len(rows)


@pytest.mark.slow
def test_list_file_with_uris_and_missing_files_on_a_cluster(ray_head, messy, reference, tmp_path):
    names = ["cat.168.jpg", "dog.169.jpg", "cmyk.jpg", "zero.jpg"]
    lst = tmp_path / "inputs.txt"
    lst.write_text("\n".join([f"file://{messy / names[0]}", *(str(messy / n) for n in names[1:]),
                              str(messy / "gone.jpg")]) + "\n")
    out = tmp_path / "out"
    r = run_cli(lst, "--ray", ray_head, "--out", out)
    assert r.returncode == 1 and "Ray cluster at" in r.stderr, r.stderr[-3000:]
    rows = {os.path.basename(x["source"]): x for x in read_rows(out)}
    assert set(rows) == {*names, "gone.jpg"}
    assert rows["cat.168.jpg"]["source"].startswith("file://")
    for name in names:
        _assert_same_as(reference, rows[name], name)
    assert "no such file" in rows["gone.jpg"]["error"]


@pytest.mark.slow
def test_resume_after_kill_9_and_ctrl_c_loses_nothing_and_repeats_nothing(ray_head, photos, reference, tmp_path):
    inputs = copies(photos, tmp_path / "many", 400)
    out = tmp_path / "out"
    cmd = [*CLI, tmp_path / "many", "--ray", ray_head, "--out", out]

    job = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=RAY_ENV)
    wait_for_parts(out, 0, job)
    job.send_signal(signal.SIGKILL)  # no chance to clean up: only whole part files may remain
    job.wait()
    first = len(read_rows(out))
    assert 0 < first < len(inputs)

    job = interruptible([*cmd, "--resume"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=RAY_ENV)
    wait_for_parts(out, len(parts(out)), job)
    job.send_signal(signal.SIGINT)
    _, err = job.communicate(timeout=RAY_TIMEOUT)
    assert job.returncode == 130 and "--resume" in err and "Traceback" not in err, err[-3000:]
    second = len(read_rows(out))
    assert first < second

    r = run_cli(*cmd[len(CLI):], "--resume")
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"{second} done earlier" in r.stderr
    rows = read_rows(out)
    assert sorted(x["source"] for x in rows) == sorted(str(p) for p in inputs)  # none missing, none twice
    for row in rows:
        _assert_same_as(reference, row, os.path.basename(row["source"]).split("-", 1)[1])
    assert not list(out.glob(".*.tmp"))


@pytest.mark.slow
def test_an_actor_that_cannot_start_is_one_error_line_not_a_hang(ray_head, messy, tmp_path):
    """The head declares a GPU it does not have: Ray places a CUDA actor, whose onnxruntime (a CPU
    build) cannot run cuda. The job must stop with the worker's reason, not retry forever."""
    r = run_cli(messy, "--ray", ray_head, "--out", tmp_path / "o", "--provider", "cuda")
    assert r.returncode == 2 and "Traceback" not in r.stderr.split("error: ")[-1], r.stderr[-3000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the Ray job stopped:") and "provider cuda is not available" in last, last
