"""`--resume` counts only the parts its manifest vouches for: a copied part, a damaged one, one that
repeats another's inputs or an entry whose part never arrived never turns into "nothing to do" over
wrong results. Real Ray runs on a few real photos (on the session's Ray head; the local `--ray` is
test_scale.py's and the SIGTERM test's), and real part files written by PartWriter."""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path

import psutil
import pytest
from testkit.scale import CLI, RAY_ENV, RAY_TIMEOUT, copies, parts, read_rows, run_cli, wait_for_parts

from catdog.runtime.scale.parts import MANIFEST_DIR, Job, PartWriter, schema
from catdog.runtime.spine.errors import OutputError

CLASSES = ("cat", "dog")


@pytest.fixture(scope="module")
def finished(tmp_path_factory, photos, ray_head) -> tuple[Path, Path]:
    """(photos folder, OUT) of one finished Ray run: 24 real photos in blocks of 4 (6 parts)."""
    tmp = tmp_path_factory.mktemp("resume")
    copies(photos, tmp / "photos", 24)
    out = tmp / "out"
    r = run_cli(tmp / "photos", "--ray", ray_head, "--out", out, "--batch", "4")
    assert r.returncode == 0 and len(parts(out)) > 2, r.stderr[-3000:]
    return tmp / "photos", out


def _resume(finished: tuple[Path, Path], tmp_path: Path, damage, address: str
            ) -> tuple[subprocess.CompletedProcess, Path, Path]:
    """A copy of the finished OUT, damaged by `damage(out) -> the part it touched`, then resumed."""
    photos, done = finished
    out = tmp_path / "out"
    shutil.copytree(done, out)
    touched = damage(out)
    return run_cli(photos, "--ray", address, "--out", out, "--resume"), out, touched


def _warning(stderr: str, name: str) -> str:
    lines = [x for x in stderr.splitlines() if x.startswith("warning: ") and name in x]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


def _assert_complete(out: Path, photos: Path) -> list[dict]:
    rows = read_rows(out)
    assert sorted(x["source"] for x in rows) == sorted(str(p) for p in photos.iterdir())  # none twice, none lost
    assert all(x["error"] is None and x["label"] in CLASSES for x in rows)
    return rows


@pytest.mark.slow
def test_a_copied_part_is_set_aside_not_counted_twice(finished, ray_head, tmp_path):
    def copy_one(out: Path) -> Path:
        shutil.copyfile(parts(out)[1], out / "part-copy.parquet")
        return out / "part-copy.parquet"

    r, out, copy = _resume(finished, tmp_path, copy_one, ray_head)
    assert r.returncode == 0 and "nothing to do" in r.stderr, r.stderr[-3000:]  # the original still holds them
    assert "not listed in _manifest/" in _warning(r.stderr, "part-copy.parquet")
    _assert_complete(out, finished[0])
    assert (out / "_part-copy.parquet.bad").read_bytes() == parts(out)[1].read_bytes()  # moved, not deleted
    assert not copy.exists()


@pytest.mark.slow
def test_a_damaged_part_is_detected_and_its_inputs_redone(finished, ray_head, tmp_path):
    import pyarrow.parquet as pq

    def dogs_to_cats(out: Path) -> Path:
        """Rewrites "dog" as "cat" in a part's label dictionary: a file that still reads, wrongly."""
        part = next(p for p in parts(out) if "dog" in pq.read_table(p).column("label").to_pylist())
        col = pq.ParquetFile(part).metadata.row_group(0).column(1)
        data = bytearray(part.read_bytes())
        at = data.index(b"dog", col.dictionary_page_offset, col.dictionary_page_offset + col.total_compressed_size)
        data[at:at + 3] = b"cat"
        part.write_bytes(bytes(data))
        assert "dog" not in pq.read_table(part).column("label").to_pylist()  # no reader would notice
        return part

    before = {x["source"]: x["label"] for x in read_rows(finished[1])}
    r, out, part = _resume(finished, tmp_path, dogs_to_cats, ray_head)
    assert r.returncode == 0 and "done earlier" in r.stderr, r.stderr[-3000:]  # its inputs ran again
    assert "sha256 differs" in _warning(r.stderr, part.name)
    rows = _assert_complete(out, finished[0])
    assert {x["source"]: x["label"] for x in rows} == before
    assert (out / f"_{part.name}.bad").is_file() and not part.exists()


@pytest.mark.slow
def test_sigterm_stops_like_ctrl_c_and_leaves_no_ray_process(photos, tmp_path):
    """ray.init's own SIGTERM handler ended the run with exit 15 and no word; the local Ray it started
    (agents included) must still be gone after the run."""
    copies(photos, tmp_path / "many", 200)
    out = tmp_path / "out"
    job = subprocess.Popen([str(c) for c in [*CLI, tmp_path / "many", "--ray", "--out", out, "--batch", "4"]],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=RAY_ENV)
    wait_for_parts(out, 0, job)
    ray_procs = psutil.Process(job.pid).children(recursive=True)
    assert any("Agent" in " ".join(p.cmdline()) for p in ray_procs), [p.cmdline()[:1] for p in ray_procs]
    job.send_signal(signal.SIGTERM)
    _, err = job.communicate(timeout=RAY_TIMEOUT)
    assert job.returncode == 143 and "terminated (SIGTERM): finish with --resume" in err, err[-3000:]
    _, alive = psutil.wait_procs(ray_procs, timeout=30)
    assert not alive, [p.cmdline()[:1] for p in alive]


def _writer(out: Path, blocks: list[list[str]]) -> PartWriter:
    """A real OUT: `blocks` of sources written as part files (every one classified as a cat)."""
    import pyarrow as pa

    w = PartWriter(out, Job("m.onnx", "0" * 64, CLASSES), log=print)
    w.open([s for b in blocks for s in b], resume=False)
    for b in blocks:
        w.write(pa.table({"source": b, "label": ["cat"] * len(b), "score": [0.9] * len(b),
                          "probs": [{"cat": 0.9, "dog": 0.1}] * len(b), "error": [None] * len(b)},
                         schema=schema(CLASSES)))
    return w


def _reopen(out: Path, sources: list[str]) -> tuple[list[str], list[str]]:
    """(inputs still to do, warning lines) of a resume of OUT."""
    said: list[str] = []
    todo = PartWriter(out, Job("m.onnx", "0" * 64, CLASSES), log=said.append).open(sources, resume=True)
    return todo, said


def test_flipped_bytes_are_caught_by_the_checksum(tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "out"
    _writer(out, [["a", "b"], ["c", "d"]])
    part = parts(out)[1]
    col = pq.ParquetFile(part).metadata.row_group(0).column(1)
    data = bytearray(part.read_bytes())
    for i in range(col.data_page_offset, col.data_page_offset + 8):  # the audit's 8 bytes in the label column
        data[i] ^= 0xFF
    part.write_bytes(bytes(data))
    todo, said = _reopen(out, ["a", "b", "c", "d"])
    assert todo == ["c", "d"] and len(said) == 1 and part.name in said[0] and "sha256" in said[0], said


def test_listed_parts_that_repeat_inputs_count_once(tmp_path):
    """A part and its entry copied under another name (or two jobs on one OUT): both vouched for."""
    out = tmp_path / "out"
    _writer(out, [["a", "b"], ["b", "c"], ["a"]])  # "a" listed twice below: its second row is not a repeat
    names = [p.name for p in parts(out)]
    todo, said = _reopen(out, ["a", "b", "c", "a", "d"])
    assert todo == ["c", "d"], todo  # block 2 repeats "b": set aside, so "c" is redone
    assert len(said) == 1 and "repeats 1 input(s)" in said[0] and "(e.g. b)" in said[0], said
    assert [p.name for p in parts(out)] == [names[0], names[2]] and (out / f"_{names[1]}.bad").is_file()
    assert Counter(x["source"] for x in read_rows(out)) == Counter({"a": 2, "b": 1})


def test_an_entry_whose_part_never_arrived_is_redone(tmp_path):
    """kill -9 between a part's entry and its rename: the entry is dropped, the block classified again."""
    out = tmp_path / "out"
    _writer(out, [["a"], ["b"]])
    parts(out)[1].unlink()
    todo, said = _reopen(out, ["a", "b"])
    assert todo == ["b"] and len(said) == 1 and "its part is missing" in said[0], said
    assert len(list((out / MANIFEST_DIR).glob("*.json"))) == 1


@pytest.mark.parametrize("foreign", ["other.parquet", "results/part-0.parquet", "part-x.parquet/a.parquet"])
def test_files_in_out_that_are_not_parts_are_refused(tmp_path, foreign):
    """Issue 32 #16: readers take the whole folder (subfolders too) as one table, so a file that is
    not this job's part, whatever its name, would come back as results: refused, named, left as it was."""
    out = tmp_path / "out"
    _writer(out, [["a", "b"], ["c", "d"]])
    ours = parts(out)
    extra = out / foreign
    extra.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ours[0], extra)
    with pytest.raises(OutputError) as e:
        _reopen(out, ["a", "b", "c", "d"])
    assert foreign.split("/")[0] in str(e.value) and "not this job's part files" in str(e.value), e.value
    assert extra.is_file() and all(p.is_file() for p in ours)  # nothing moved, nothing set aside
    assert not list(out.glob("_*.bad"))


@pytest.mark.slow
def test_resume_refuses_a_foreign_parquet_file_instead_of_nothing_to_do(finished, ray_head, tmp_path):
    """Issue 32 #16 through the CLI: a Parquet file not named part-* used to be ignored ("nothing to
    do") while pandas.read_parquet(OUT) returned its rows twice."""
    def foreign_copy(out: Path) -> Path:
        shutil.copyfile(parts(out)[0], out / "extra.parquet")
        return out / "extra.parquet"

    r, out, extra = _resume(finished, tmp_path, foreign_copy, ray_head)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "extra.parquet" in last and "move them out" in last, last
    assert "nothing to do" not in r.stderr and extra.is_file()
