"""Where results go: a rich table, JSON lines, a CSV file (written atomically), and for video the
overlay, the --show window and the --save annotated video (written to a temp name, renamed at the end)."""

from __future__ import annotations

import csv
import io
import os
import sys
from pathlib import Path
from typing import Any, Protocol, TextIO

from catdog.runtime.spine.fileio import atomic_write, check_writable_dir
from catdog.runtime.spine.folders import flat_label
from catdog.runtime.spine.records import Failure, Record
from catdog.runtime.spine.serialize import csv_header, csv_row, json_line, table_lines


class Sink(Protocol):
    """Where a run hands each input's record, in input order; close() once at the end."""

    def add(self, source: str, result: Record) -> None: ...

    def close(self) -> None: ...


class JsonSink:
    """One JSON object per line on stdout, flushed so a pipe sees each result at once."""

    def __init__(self, out: TextIO | None = None):
        self.out = out or sys.stdout

    def add(self, source: str, result: Record, extra: dict[str, Any] | None = None) -> None:
        self.out.write(json_line(source, result, extra) + "\n")
        self.out.flush()

    def close(self) -> None:
        pass


class CsvSink:
    """Collects rows and writes FILE once, atomically: an interrupted run never leaves half a CSV.
    The columns are serialize.csv_header's (a probability per class, or the top 5 past 32 classes)."""

    def __init__(self, path: str | os.PathLike, classes: tuple[str, ...]):
        self.path = Path(path)
        check_writable_dir(self.path.parent, create=False)  # fail before the run; the folder comes with the file
        self.classes = classes
        self.rows: list[list[str | int]] = []

    def add(self, source: str, result: Record) -> None:
        self.rows.append(csv_row(source, result, self.classes))

    def close(self) -> None:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(csv_header(self.classes))
        w.writerows(self.rows)
        atomic_write(self.path, buf.getvalue())


class TableSink:
    """A readable table on stdout at the end (rows keep input order; serialize.table_lines). Plain
    aligned text, not rich: importing rich to print a few rows was ~40 ms of a one-photo run's cold
    start, and plain lines print the same on a terminal, in a pipe and under grep (a path is never
    folded)."""

    def __init__(self, topk: int = 1, stream: TextIO | None = None):
        self.topk = max(1, topk)
        self.stream = stream
        self.rows: list[tuple[str, Record]] = []

    def add(self, source: str, result: Record) -> None:
        self.rows.append((source, result))

    def lines(self) -> list[str]:
        return table_lines(self.rows, self.topk)

    def close(self) -> None:
        out = self.stream or sys.stdout
        out.write("\n".join(self.lines()) + "\n")
        out.flush()


class AccuracySink:
    """When every classified file's name says its class (a class folder `dog/x.jpg`, or a Kaggle name
    `dog.12.jpg`), the summary gets the accuracy with its 95% Wilson interval. An `unsure` answer
    counts as not correct: abstaining is not being right."""

    def __init__(self, classes: tuple[str, ...]):
        self.classes = set(classes)
        self.correct = self.n = self.unsure = self.unlabelled = 0

    def _truth(self, source: str) -> str | None:
        p = Path(source)
        return p.parent.name if p.parent.name in self.classes else flat_label(p.name)

    def add(self, source: str, result: Record) -> None:
        if isinstance(result, Failure):
            return
        truth = self._truth(source)
        if truth not in self.classes:
            self.unlabelled += 1
            return
        self.n += 1
        self.correct += result.label == truth
        self.unsure += result.unsure

    def close(self) -> None:
        pass

    def summary_rows(self) -> list[tuple[str, str]]:
        from catdog.runtime.spine.metrics import format_accuracy

        if not self.n or self.unlabelled:
            return []
        rows = [("accuracy", f"{format_accuracy(self.correct, self.n)}, labels from file/folder names")]
        return rows + ([("unsure", f"{self.unsure} of {self.n}")] if self.unsure else [])
