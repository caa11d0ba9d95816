"""The output of `catdog-runtime SOURCE --ray --out OUT`: OUT is a folder of Parquet part files, one
per classified block, each written atomically (temp + fsync + rename), plus `_job.json` (the model
and classes the results came from). A job killed at any moment (kill -9 included) leaves only whole
part files, so `--resume` knows exactly which inputs are done: no finished work is lost or repeated.
Readers take the folder as one table (pyarrow.parquet.read_table(OUT), pandas.read_parquet(OUT));
they skip `_job.json` and temp files (names starting with "_" or ".")."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from catdog.runtime.errors import OutputError, error_line
from catdog.runtime.files import atomic_path, atomic_write

JOB_FILE = "_job.json"
PART_GLOB = "part-*.parquet"


def schema(classes: Sequence[str]) -> Any:
    """The fields of `--json`, one row per input: a result (label, score, probs) or an error."""
    import pyarrow as pa

    probs = pa.struct([pa.field(c, pa.float64()) for c in classes])
    return pa.schema([("source", pa.string()), ("label", pa.string()), ("score", pa.float64()),
                      ("probs", probs), ("error", pa.string())])


@dataclass(frozen=True)
class Job:
    """What the results in a folder were made with; a resume with anything else would mix them."""

    model: str
    model_sha256: str
    classes: tuple[str, ...]

    def to_json(self) -> str:
        return json.dumps({"model": self.model, "model_sha256": self.model_sha256, "classes": list(self.classes)},
                          indent=2) + "\n"


def remaining(sources: Sequence[str], done: Counter) -> list[str]:
    """`sources` less those already in the output, counted: an input listed k times needs k rows."""
    left = Counter(done)
    out = []
    for s in sources:
        if left[s] > 0:
            left[s] -= 1
        else:
            out.append(s)
    return out


class PartWriter:
    """Opens OUT for a fresh run or a resume, then writes one part file per block."""

    def __init__(self, out: Path, job: Job, resume: bool):
        self.out = Path(out)
        self.job = job
        self.run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"  # part names never collide across runs
        self.seq = 0
        self.done = self._open(resume)

    def _open(self, resume: bool) -> Counter:
        out = self.out
        if out.exists() and not out.is_dir():
            raise OutputError(f"{out}: is a file; --out names a folder of Parquet part files (e.g. results.parquet/)")
        entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
        ours = (out / JOB_FILE).is_file()
        if entries and not ours:
            raise OutputError(f"{out}: exists and is not a catdog-runtime --ray output (no {JOB_FILE}); "
                              "choose a new or empty --out folder")
        if ours and not resume:
            n = sum(self._count(p) for p in self.parts())
            raise OutputError(f"{out}: holds {n} result(s) of an earlier run; pass --resume to finish that job, "
                              "or choose another --out")
        if ours:
            self._check_same_job()
            for stale in out.glob(".part-*.tmp"):  # a writer killed mid-file: the block is redone
                stale.unlink(missing_ok=True)
            return self._done()
        atomic_write(out / JOB_FILE, self.job.to_json())
        return Counter()

    def parts(self) -> list[Path]:
        return sorted(self.out.glob(PART_GLOB))

    def _check_same_job(self) -> None:
        path = self.out / JOB_FILE
        try:
            old = json.loads(path.read_text())
            same = (old["model_sha256"], tuple(old["classes"])) == (self.job.model_sha256, self.job.classes)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise OutputError(f"{path}: unreadable ({error_line(e)}); choose another --out") from None
        if not same:
            raise OutputError(f"{self.out}: holds results of another model or class list ({old.get('model')}); "
                              "resume with the same --model and --labels, or choose another --out")

    @staticmethod
    def _count(part: Path) -> int:
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(part).metadata.num_rows
        except Exception as e:  # noqa: BLE001 - pyarrow raises its own classes for a damaged file
            raise OutputError(f"{part}: not a readable Parquet file ({error_line(e)}); remove it and "
                              "rerun with --resume (its inputs are classified again)") from None

    def _done(self) -> Counter:
        import pyarrow.parquet as pq

        done: Counter = Counter()
        for part in self.parts():
            try:
                done.update(pq.read_table(part, columns=["source"]).column("source").to_pylist())
            except Exception as e:  # noqa: BLE001 - see _count
                raise OutputError(f"{part}: not a readable Parquet file ({error_line(e)}); remove it and "
                                  "rerun with --resume (its inputs are classified again)") from None
        return done

    def write(self, table: Any) -> Path:
        """One block of results -> OUT/part-RUN-SEQ.parquet, atomically."""
        import pyarrow.parquet as pq

        self.seq += 1
        path = self.out / f"part-{self.run_id}-{self.seq:06d}.parquet"
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
        return path
