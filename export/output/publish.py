"""What an export does to the rest of its --out folder, so that what lies there always belongs together:

- publishing: the staged artifacts are renamed in; then any artifact-table file this export did
  not build (an older export's model.int8.onnx beside a new model.onnx) and an older failed
  attempt's report are stale: each is renamed, never deleted, into `stale/<when>/` (the same
  filesystem: one atomic rename each) and the report lists it; so are a failed report's INT8
  disagreement grids (gallery.py: each report's grids go with it);
- a gate failure publishes nothing, and over an earlier export (artifacts in --out) its report is
  export-report.failed.json/.md, so export-report.json/.md keep describing the artifacts beside
  them. In a folder without artifacts the failure report is export-report.json/.md itself."""

from __future__ import annotations

import os
import time
from pathlib import Path

from catdog.export.output.gallery import galleries
from catdog.export.output.report import FAILED_JSON, FAILED_MD, FAILED_STEM, REPORT_MD, REPORT_STEM, ExportReport
from catdog.export.output.staging import Staging
from catdog.runtime.spine.artifacts import ARTIFACTS
from catdog.runtime.spine.errors import GateError, OutputError

STALE_DIR = "stale"


def _present(out_dir: Path, names: list[str]) -> list[str]:
    return [n for n in names if (out_dir / n).is_file()]


def stale_files(out_dir: Path, built: list[str]) -> list[str]:
    """Files in `out_dir` that an export building `built` (file names) would leave mixed with its own."""
    return _present(out_dir, [a.filename for a in ARTIFACTS.values() if a.filename not in built]
                    + [FAILED_JSON, FAILED_MD] + galleries(out_dir, FAILED_STEM.removeprefix(REPORT_STEM)))


def _stale_folder(out_dir: Path) -> Path:
    """A new `stale/<UTC time>` folder: one per export that moves files aside, so none is ever overwritten."""
    base = out_dir / STALE_DIR / time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    for i in range(1, 1000):
        folder = base if i == 1 else base.with_name(f"{base.name}-{i}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
        except OSError as e:
            raise OutputError(f"cannot create {folder} for the stale files of an older export: {e.strerror}; "
                              "nothing was published") from None
    raise OutputError(f"cannot create a folder under {out_dir / STALE_DIR}; nothing was published")


def publish(staging: Staging, out_dir: Path) -> list[dict[str, str]]:
    """Publish every staged artifact, then move what an older export left aside; -> the moves
    ({"file", "moved_to"}, relative to `out_dir`). The stale folder is made before anything is
    published: if it cannot be, nothing is."""
    stale = stale_files(out_dir, list(staging.staged()))
    folder = _stale_folder(out_dir) if stale else None
    try:
        staging.publish()
    except BaseException:
        _drop(folder)
        raise
    moved = []
    for name in stale:
        dst = folder / name
        try:
            os.rename(out_dir / name, dst)
        except FileNotFoundError:
            continue  # gone since it was listed: nothing left to mix up
        except OSError as e:
            raise OutputError(f"published to {out_dir}, but cannot move the stale {name} aside into {folder}: "
                              f"{e.strerror}; move or remove it by hand") from None
        moved.append({"file": name, "moved_to": str(dst.relative_to(out_dir))})
    if not moved:
        _drop(folder)
    return moved


def _drop(folder: Path | None) -> None:
    """Remove an unused stale/<when> folder (and stale/ when that leaves it empty)."""
    for d in (folder, folder.parent) if folder is not None else ():
        try:
            d.rmdir()
        except OSError:  # not empty: another export's stale files are in it
            return


def report_stem(out_dir: Path, published: bool) -> str:
    """Where this export's report goes: export-report.json/.md, unless it published nothing and an
    earlier export's artifacts lie in `out_dir` (their report must stay theirs)."""
    if published or not _present(out_dir, [a.filename for a in ARTIFACTS.values()]):
        return REPORT_STEM
    return FAILED_STEM


def moved_line(out_dir: Path, moved: list[dict[str, str]]) -> str:
    """The CLI's words for the moves ('' when none)."""
    if not moved:
        return ""
    where = out_dir / Path(moved[0]["moved_to"]).parent
    return (f"; moved {len(moved)} stale file(s) of an older export aside to {where}: "
            + ", ".join(m["file"] for m in moved))


def gate_error(report: ExportReport, md: Path) -> GateError:
    """The one line for a gate failure that published nothing: the first failure, and where its report is."""
    more = f" (+{len(report.failures) - 1} more)" if len(report.failures) > 1 else ""
    kept = f" (the earlier export in {md.parent} and its {REPORT_MD} are kept)" if md.name == FAILED_MD else ""
    return GateError(f"{report.failures[0]}{more}; nothing published, see {md}{kept}; "
                     "override with --gate NAME=VALUE or --allow-gate-failure")
