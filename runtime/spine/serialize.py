"""The one place a result record (spine/records.py) becomes text or a row: the JSON line of --json
(and of POST /api/predict), the CSV header and rows of --csv, the table's lines, the live record
/api/latest and /api/events serve, the Parquet row of --ray. Every output calls these; none builds
its own dict. Names that are not UTF-8 go through text_name first, everywhere."""

from __future__ import annotations

import json
from typing import Any, Sequence

from catdog.runtime.spine.records import Failure, Prediction, Record

MAX_CLASS_COLUMNS = 32  # CSV: one probability column per class up to this many, the top 5 as text beyond
HTTP_STATUS = {"input": 400, "model": 500, "output": 500, "stream": 502}  # the API's answer to a Failure


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


def _probs(pred: Prediction) -> dict[str, float]:
    return {k: float(v) for k, v in pred.probs.items()}


# -- JSON lines (--json) and the API's answer -------------------------------------------------------
def json_line(source: str, record: Record, extra: dict[str, Any] | None = None) -> str:
    """One JSON object; `extra` adds fields to a prediction's (--timings). allow_nan=False: NaN is
    not JSON (the Classifier never lets one through)."""
    if isinstance(record, Failure):
        return json.dumps({"source": text_name(source), "error": text_name(record.message)}, ensure_ascii=False)
    return json.dumps({"source": text_name(source), "label": record.label, "score": float(record.score),
                       "probs": _probs(record), **(extra or {})}, ensure_ascii=False, allow_nan=False)


def api_json(source: str, pred: Prediction) -> str:
    """POST /api/predict's answer: the JSON line --json writes for the same photo."""
    return json_line(source, pred)


def api_error(failure: Failure) -> tuple[int, dict[str, str]]:
    """POST /api/predict's answer to a Failure: the status its kind means (an unreadable upload is
    the client's 400, NaN scores the server's 500) and the one-line JSON error of every 4xx/5xx."""
    return HTTP_STATUS[failure.kind], {"error": failure.message}


# -- CSV (--csv) ------------------------------------------------------------------------------------
def _csv_extra(classes: Sequence[str]) -> list[str]:
    return [f"p_{c}" for c in classes] if len(classes) <= MAX_CLASS_COLUMNS else ["top5"]


def csv_header(classes: Sequence[str]) -> list[str]:
    """One probability column per class when there are few classes; the top 5 as text otherwise."""
    return ["source", "label", "index", "score", "error", *_csv_extra(classes)]


def csv_row(source: str, record: Record, classes: Sequence[str]) -> list[str | int]:
    """A row as wide as csv_header(classes), whatever the record."""
    source = text_name(source)
    if isinstance(record, Failure):
        failed: list[str | int] = [source, "", "", "", text_name(record.message)]
        return failed + [""] * len(_csv_extra(classes))
    head: list[str | int] = [source, record.label, record.index, f"{record.score:.6f}", ""]
    if len(classes) <= MAX_CLASS_COLUMNS:
        return head + [f"{record.probs[c]:.6f}" for c in classes]
    return head + ["; ".join(f"{k}={v:.4f}" for k, v in record.top(5))]


# -- the table (no --json) --------------------------------------------------------------------------
def printable(text: str) -> str:
    """A file name may hold a newline or an escape sequence: show it, never let it move the cursor."""
    text = text_name(text)
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def table_lines(rows: Sequence[tuple[str, Record]], topk: int = 1) -> list[str]:
    """Plain aligned text, rows in input order: source, label (or the top k, one line each), score.
    A Failure is the label `error` and its message, which runs on past the score column."""
    topk = max(1, topk)
    head = ("source", "label" if topk == 1 else f"top {topk}", "score")
    cells: list[tuple[str, str, str]] = []
    for source, r in rows:
        source = printable(source)
        if isinstance(r, Failure):
            cells.append((source, "error", printable(r.message)))
            continue
        top = [(r.label, r.score)] if topk == 1 else r.top(topk)  # r.label may be 'unsure'
        for i, (label, p) in enumerate(top):  # top-k: one line per class
            cells.append((source if i == 0 else "", printable(label), f"{p:.3f}"))
    w0 = max(len(c[0]) for c in [head, *cells])
    w1 = max(len(c[1]) for c in [head, *cells])
    # The score column is right-aligned to its header; an error message runs on past it.
    return [f"{a:<{w0}}  {b:<{w1}}  {c:>5}".rstrip() for a, b, c in [head, *cells]]


# -- the live record (/api/latest, /api/events) -----------------------------------------------------
def live_record(source: str, pred: Prediction, *, frame: int | None, time: float, fps: float,
                stage_ms: dict[str, float], model: str, provider: str, topk: int = 5) -> dict[str, Any]:
    """The newest prediction as the server keeps it: the JSON line's fields and what a viewer needs
    besides (frame, time, top k, unsure, this frame's stage ms, fps, model, provider)."""
    return {"source": text_name(source), "frame": frame, "time": time, "label": pred.label,
            "score": float(pred.score), "topk": [[k, float(v)] for k, v in pred.top(topk)],
            "probs": _probs(pred), "unsure": pred.unsure, "stage_ms": stage_ms, "fps": fps, "model": model,
            "provider": provider}


# -- Parquet (--ray --out) --------------------------------------------------------------------------
def parquet_row(source: str, record: Record) -> dict[str, Any]:
    """One row of a --ray part, in scale/parts.schema's columns: a result's label, score and probs, or
    the error that names the file."""
    if isinstance(record, Failure):
        return {"source": source, "label": None, "score": None, "probs": None, "error": record.message}
    return {"source": source, "label": record.label, "score": float(record.score), "probs": _probs(record),
            "error": None}
