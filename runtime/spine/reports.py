"""The one way reports are written: Markdown tables from rows (right-aligned where asked), and a
report's JSON + Markdown pair beside each other, each written atomically. Export reports, the
benchmarks' reports and the scripts' summaries all use it, so every table reads the same."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Sequence

from catdog.runtime.spine.fileio import atomic_write


def md_table(head: Sequence[str], rows: Iterable[Sequence[Any]], right: Iterable[int] = ()) -> list[str]:
    """Markdown table lines; `right`: indices of the columns to right-align (numbers)."""
    right = set(right)
    rule = "|" + "".join("---:|" if i in right else "---|" for i in range(len(head)))
    return ["| " + " | ".join(head) + " |", rule] + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def write_report_pair(out_dir: Path, stem: str, data: dict[str, Any], markdown: str,
                      sort_keys: bool = True) -> tuple[Path, Path]:
    """`<stem>.json` (indented; objects that are not JSON types as str) and `<stem>.md`, atomically."""
    js = atomic_write(Path(out_dir) / f"{stem}.json",
                      json.dumps(data, indent=2, sort_keys=sort_keys, default=str) + "\n")
    md = atomic_write(Path(out_dir) / f"{stem}.md", markdown)
    return js, md
