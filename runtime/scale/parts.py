"""The output of `catdog-runtime SOURCE --ray --out OUT`: OUT is a folder of Parquet part files, one
per classified block, each written atomically (temp + fsync + rename), plus `_job.json` (the model
and classes the results came from) and `_manifest/`, one small entry per part (its rows, size and
sha256), also written atomically and before its part is renamed into place.

`--resume` counts a part as done only when its entry vouches for it: a part with no entry (copied in,
or left by anything but this job), a size, checksum or row count that differs (damaged since), or
rows that repeat inputs another part already holds is moved aside (`_NAME.bad`, never deleted) with
one line on stderr, and its inputs are classified again. Anything else in OUT that readers would take
as results (`other.parquet`, a folder) is refused: it is not this job's to move. A job killed at any moment (kill -9
included) leaves whole parts and entries, at worst an entry whose part never arrived: that block is
simply classified again. Readers take the folder as one table (pyarrow.parquet.read_table(OUT),
pandas.read_parquet(OUT)); they skip names starting with "_" or "." (the job file, the manifest,
parts set aside, temp files)."""

from __future__ import annotations

import fnmatch
import json
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from catdog.runtime.spine.errors import OutputError, error_line
from catdog.runtime.spine.fileio import atomic_path, atomic_write, file_sha256

JOB_FILE = "_job.json"
MANIFEST_DIR = "_manifest"  # one <part name>.json per part
PART_GLOB = "part-*.parquet"
SHOWN_SET_ASIDE = 5  # lines naming parts set aside; an older or badly damaged OUT could have thousands
Log = Callable[[str], None]


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


@dataclass(frozen=True)
class Entry:
    """What the manifest says of one part, checked on resume before its rows count as done."""

    part: str
    rows: int
    size: int
    sha256: str

    def to_json(self) -> str:
        return json.dumps({"part": self.part, "rows": self.rows, "bytes": self.size, "sha256": self.sha256}) + "\n"

    @staticmethod
    def read(path: Path) -> Entry | None:
        """The entry in `path`; None if it is unreadable or names another part (not ours to trust)."""
        try:
            d = json.loads(path.read_text())
            e = Entry(str(d["part"]), int(d["rows"]), int(d["bytes"]), str(d["sha256"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return e if path.name == f"{e.part}.json" else None


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
    """Opens OUT for a fresh run or a resume (open), then writes one part file per block (write)."""

    def __init__(self, out: Path, job: Job, log: Log):
        self.out = Path(out)
        self.manifest = self.out / MANIFEST_DIR
        self.job = job
        self.log = log
        self.run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"  # part names never collide across runs
        self.seq = 0
        self.set_aside = 0  # parts moved aside by this open

    def open(self, sources: Sequence[str], resume: bool) -> list[str]:
        """Checks OUT and returns the inputs still to classify: all of `sources` in a new OUT; on a
        resume, those that no verified part holds."""
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
        try:
            self.manifest.mkdir(parents=True, exist_ok=True)  # before the job file: a folder with one has both
        except OSError as e:
            raise OutputError(f"cannot write to {out}: {e.strerror}; choose a writable folder") from None
        if not ours:
            atomic_write(out / JOB_FILE, self.job.to_json())
            return list(sources)
        self._check_same_job()
        self._refuse_foreign(entries)
        for stale in [*out.glob(".part-*.tmp"), *self.manifest.glob(".*.tmp")]:  # killed mid-file: redone
            stale.unlink(missing_ok=True)
        held = self._counted(self._verified(), sources)
        if self.set_aside > SHOWN_SET_ASIDE:
            self.log(f"warning: {out}: {self.set_aside - SHOWN_SET_ASIDE} more part(s) set aside as _*.bad "
                     "for the same kinds of reasons")
        return remaining(sources, held)

    def parts(self) -> list[Path]:
        return sorted(p for p in self.out.glob(PART_GLOB) if p.is_file())

    def _refuse_foreign(self, names: list[str]) -> None:
        """Readers take every name in OUT not starting with "_" or "." as results: anything there but
        this job's part files (another table, a copy under another name, a folder) would be read with
        them, duplicates included, and no resume could vouch for it. Not ours to move: refused."""
        foreign = [n for n in names if not n.startswith(("_", ".")) and
                   not (fnmatch.fnmatchcase(n, PART_GLOB) and (self.out / n).is_file())]
        if foreign:
            shown = ", ".join(foreign[:SHOWN_SET_ASIDE]) + (" ..." if len(foreign) > SHOWN_SET_ASIDE else "")
            raise OutputError(f"{self.out}: holds {len(foreign)} file(s) that are not this job's part files "
                              f"({shown}); readers of the folder would take them as results: move them out of "
                              f"{self.out}, then rerun with --resume")

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
            raise OutputError(f"{part}: not a readable Parquet file ({error_line(e)}); move it out of {part.parent} "
                              "and rerun with --resume (its inputs are classified again)") from None

    def _verified(self) -> dict[str, Counter]:
        """Each part its manifest entry vouches for -> the sources it holds, in name order (run, then
        block). Parts it does not vouch for are set aside; entries whose part is gone are dropped."""
        import pyarrow.parquet as pq

        names = {p.name for p in self.parts()}
        for entry in sorted(self.manifest.glob("*.json")):
            if entry.name.removesuffix(".json") not in names:
                # A job killed between an entry and its part's rename, or a part removed by hand.
                self.log(f"warning: {entry}: its part is missing from {self.out}; its inputs are classified again")
                entry.unlink(missing_ok=True)
        held: dict[str, Counter] = {}
        for part in self.parts():
            why = self._why_not(part, Entry.read(self.manifest / f"{part.name}.json"))
            if why is None:
                try:
                    held[part.name] = Counter(pq.read_table(part, columns=["source"]).column("source").to_pylist())
                except Exception as e:  # noqa: BLE001 - see _count: a writer that wrote a bad file
                    why = f"not a readable Parquet file ({error_line(e)})"
            if why is not None:
                self._move_aside(part, why)
        return held

    def _why_not(self, part: Path, entry: Entry | None) -> str | None:
        """Why the manifest cannot vouch for `part`; None when it can (size, then sha256, then rows)."""
        if entry is None:
            return f"not listed in {MANIFEST_DIR}/ (a copy, or not written by this job)"
        size = part.stat().st_size
        if size != entry.size:
            return f"{size} bytes where {MANIFEST_DIR}/ says {entry.size} (changed since it was written)"
        if file_sha256(part) != entry.sha256:
            return f"its sha256 differs from the one in {MANIFEST_DIR}/ (damaged since it was written)"
        try:
            rows = self._count(part)
        except OutputError:
            return "not a readable Parquet file, though its sha256 is the one in the manifest"
        if rows != entry.rows:
            return f"{rows} rows where {MANIFEST_DIR}/ says {entry.rows}"
        return None

    def _counted(self, held: dict[str, Counter], sources: Sequence[str]) -> Counter:
        """The rows that count as done. An input listed k times needs k rows: a part that would give
        one more than that repeats another part's work (a copy vouched for by a copied entry, or two
        jobs on one OUT) and is set aside; the earlier part keeps its rows."""
        need, done = Counter(sources), Counter[str]()
        first: dict[str, str] = {}
        for name, got in held.items():
            over = [s for s, k in got.items() if s in need and done[s] + k > need[s]]
            if over:
                other = first.get(over[0])
                self._move_aside(self.out / name, f"repeats {len(over)} input(s) that {other} already holds "
                                 f"(e.g. {over[0]})" if other else f"holds {over[0]} more often than SOURCE lists it")
                continue
            done.update(got)
            for s in got:
                first.setdefault(s, name)
        return done

    def _move_aside(self, part: Path, why: str) -> None:
        """Renames `part` to `_NAME.bad` (readers skip it; the user decides what to do with it) and
        drops its entry, so its rows no longer count."""
        bad, n = self.out / f"_{part.name}.bad", 1
        while bad.exists():
            bad, n = self.out / f"_{part.name}.{n}.bad", n + 1
        try:
            os.replace(part, bad)
            (self.manifest / f"{part.name}.json").unlink(missing_ok=True)
        except OSError as e:
            raise OutputError(f"{part}: {why}, and it cannot be moved aside ({e.strerror}); move it out of "
                              f"{self.out} and rerun with --resume") from None
        self.set_aside += 1
        if self.set_aside <= SHOWN_SET_ASIDE:
            self.log(f"warning: {part}: {why}; moved aside to {bad.name}, its inputs are redone "
                     "unless another part holds them")

    def write(self, table: Any) -> Path:
        """One block of results -> OUT/part-RUN-SEQ.parquet and its entry, each atomically."""
        import pyarrow.parquet as pq

        self.seq += 1
        path = self.out / f"part-{self.run_id}-{self.seq:06d}.parquet"
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
            # The entry before the rename: a kill between the two leaves an entry without its part
            # (that block is classified again), never a finished part that resume cannot vouch for.
            entry = Entry(path.name, table.num_rows, tmp.stat().st_size, file_sha256(tmp))
            atomic_write(self.manifest / f"{path.name}.json", entry.to_json())
        return path
