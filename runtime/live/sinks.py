"""Where results go: a rich table, JSON lines, a CSV file (written atomically), and for video the
overlay, the --show window and the --save annotated video (written to a temp name, renamed at the end)."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from catdog.runtime.engine.classifier import Prediction
from catdog.runtime.spine.fileio import atomic_write, check_writable_dir
from catdog.runtime.spine.folders import flat_label

Result = Prediction | str  # a Prediction, or the error message for that input


def text_name(text: str) -> str:
    """A file name (or a message holding one) as valid UTF-8 text: the bytes of a name that are not
    UTF-8, which Python keeps as surrogate escapes, become \\xNN (a UTF-8 stdout, JSON and CSV
    cannot hold them as they are)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        try:
            return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:
            return text.encode("utf-8", "backslashreplace").decode("utf-8")


def json_line(source: str, result: Result, extra: dict[str, Any] | None = None) -> str:
    """One JSON object; `extra` adds fields to a result's (--timings). allow_nan=False: NaN is not
    JSON (the Classifier never lets one through)."""
    if isinstance(result, str):
        return json.dumps({"source": text_name(source), "error": text_name(result)}, ensure_ascii=False)
    return json.dumps({"source": text_name(source), "label": result.label, "score": float(result.score),
                       "probs": {k: float(v) for k, v in result.probs.items()}, **(extra or {})},
                      ensure_ascii=False, allow_nan=False)


class JsonSink:
    """One JSON object per line on stdout, flushed so a pipe sees each result at once."""

    def __init__(self, out: TextIO | None = None):
        self.out = out or sys.stdout

    def add(self, source: str, result: Result, extra: dict[str, Any] | None = None) -> None:
        self.out.write(json_line(source, result, extra) + "\n")
        self.out.flush()

    def close(self) -> None:
        pass


class CsvSink:
    """Collects rows and writes FILE once, atomically: an interrupted run never leaves half a CSV.
    One probability column per class when there are few classes; the top 5 as text otherwise."""

    MAX_CLASS_COLUMNS = 32

    def __init__(self, path: str | os.PathLike, classes: tuple[str, ...]):
        self.path = Path(path)
        check_writable_dir(self.path.parent, create=False)  # fail before the run; the folder comes with the file
        self.classes = classes
        self.rows: list[list[Any]] = []

    def _extra(self) -> list[str]:
        return [f"p_{c}" for c in self.classes] if len(self.classes) <= self.MAX_CLASS_COLUMNS else ["top5"]

    def add(self, source: str, result: Result) -> None:
        source = text_name(source)
        if isinstance(result, str):  # every row as wide as the header
            self.rows.append([source, "", "", "", text_name(result)] + [""] * len(self._extra()))
        elif len(self.classes) <= self.MAX_CLASS_COLUMNS:
            self.rows.append([source, result.label, result.index, f"{result.score:.6f}", ""]
                             + [f"{result.probs[c]:.6f}" for c in self.classes])
        else:
            top = "; ".join(f"{k}={v:.4f}" for k, v in result.top(5))
            self.rows.append([source, result.label, result.index, f"{result.score:.6f}", "", top])

    def close(self) -> None:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["source", "label", "index", "score", "error", *self._extra()])
        w.writerows(self.rows)
        atomic_write(self.path, buf.getvalue())


class TableSink:
    """A readable table on stdout at the end (rows keep input order). Plain aligned text, not rich:
    importing rich to print a few rows was ~40 ms of a one-photo run's cold start, and plain lines
    print the same on a terminal, in a pipe and under grep (a path is never folded)."""

    def __init__(self, topk: int = 1, stream: TextIO | None = None):
        self.topk = max(1, topk)
        self.stream = stream
        self.rows: list[tuple[str, Result]] = []

    def add(self, source: str, result: Result) -> None:
        self.rows.append((source, result))

    def lines(self) -> list[str]:
        head = ("source", "label" if self.topk == 1 else f"top {self.topk}", "score")
        cells: list[tuple[str, str, str]] = []
        for source, r in self.rows:
            source = _printable(source)
            if isinstance(r, str):
                cells.append((source, "error", _printable(r)))
                continue
            top = [(r.label, r.score)] if self.topk == 1 else r.top(self.topk)  # r.label may be 'unsure'
            for i, (label, p) in enumerate(top):  # top-k: one line per class
                cells.append((source if i == 0 else "", _printable(label), f"{p:.3f}"))
        w0 = max(len(c[0]) for c in [head, *cells])
        w1 = max(len(c[1]) for c in [head, *cells])
        # The score column is right-aligned to its header; an error message runs on past it.
        return [f"{a:<{w0}}  {b:<{w1}}  {c:>5}".rstrip() for a, b, c in [head, *cells]]

    def close(self) -> None:
        out = self.stream or sys.stdout
        out.write("\n".join(self.lines()) + "\n")
        out.flush()


def _printable(text: str) -> str:
    """A file name may hold a newline or an escape sequence: show it, never let it move the cursor."""
    text = text_name(text)
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


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

    def add(self, source: str, result: Result) -> None:
        if isinstance(result, str):
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








