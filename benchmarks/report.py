"""report.json (the numbers, schema-versioned) and report.md (the same, for people), written
atomically, plus ratios between artifacts and `compare` between two reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from catdog.runtime.errors import InputError
from catdog.runtime.files import atomic_write

from catdog.benchmarks.env import env_lines
from catdog.benchmarks.latency import ratio

SCHEMA = "catdog-bench/1"
BASELINE = "onnx-fp32"
# Headline comparisons: (label, faster-candidate artifact, reference artifact). speedup = ref p50 / cand p50.
HEADLINES = (
    ("ORT fp32 vs torch eager", "onnx-fp32", "torch-eager"),
    ("ORT fp32 vs TorchScript", "onnx-fp32", "torchscript"),
    ("TorchScript vs torch eager", "torchscript", "torch-eager"),
    ("INT8 vs fp32", "onnx-int8", "onnx-fp32"),
    ("fp16 vs fp32", "onnx-fp16", "onnx-fp32"),
    ("baked vs fp32", "onnx-baked", "onnx-fp32"),
)


def _key(row: dict[str, Any]) -> tuple:
    return row["provider"], row["threads"], row["batch"]


def compute_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (provider, threads, batch): speedup of each pair in HEADLINES, and provider vs CPU."""
    ok = [r for r in rows if r.get("status") == "ok"]
    p50 = {(*_key(r), r["artifact"]): r["p50_ms"] for r in ok}
    out = []
    for provider, threads, batch in sorted({_key(r) for r in ok}, key=lambda k: (k[0], k[1] or 0, k[2])):
        for label, cand, ref in HEADLINES:
            s = ratio(p50.get((provider, threads, batch, ref)), p50.get((provider, threads, batch, cand)))
            if s is not None:
                out.append({"what": label, "provider": provider, "threads": threads, "batch": batch,
                            "candidate": cand, "reference": ref, "speedup": s})
    cpu_best: dict[tuple[str, int], float] = {}  # fastest CPU thread setting per artifact, batch
    for r in ok:
        if r["provider"] == "cpu":
            k = (r["artifact"], r["batch"])
            cpu_best[k] = min(cpu_best.get(k, float("inf")), r["p50_ms"])
    for r in ok:
        if r["provider"] != "cpu" and (r["artifact"], r["batch"]) in cpu_best:
            out.append({"what": f"{r['provider']} vs best CPU", "provider": r["provider"], "threads": None,
                        "batch": r["batch"], "candidate": r["artifact"], "reference": f"{r['artifact']}@cpu",
                        "speedup": cpu_best[(r["artifact"], r["batch"])] / r["p50_ms"]})
    return out


def write_report(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    report = {"schema": SCHEMA, **report}
    js = atomic_write(out_dir / "report.json", json.dumps(report, indent=2, sort_keys=False, default=str) + "\n")
    md = atomic_write(out_dir / "report.md", render_md(report))
    return js, md


def load_report(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such report") from None
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: not a readable report.json ({e})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise InputError(f"{path}: not a catdog-bench report (schema {SCHEMA})")
    return data


def _f(v: Any, fmt: str = ".2f") -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        text = str(v)
        return text if len(text) <= 60 else text[:57] + "..."  # long outputs stay in report.json
    return format(v, fmt if isinstance(v, float) or "," in fmt else "d")


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def render_md(rep: dict[str, Any]) -> str:
    L = [f"# catdog-bench report: {rep['name']}", "", f"Created {rep['created']} with `{rep['command']}`.", ""]
    L += ["## Environment", ""] + [f"- {x}" for x in env_lines(rep["env"])] + [""]
    c = rep["config"]
    L += [f"Input: {c['input']}. Warm-up {c['warmup']}, "
          + (f"{c['iters']} timed runs" if c["iters"] else f"{c['seconds']} s") + f" per artifact in interleaved blocks of {c['block']}.", ""]
    L += ["## Artifacts", ""] + _table(
        ["artifact", "kind", "precision", "input", "size MB", "params", "GFLOPs/img", "file"],
        [[a["name"], a["kind"], a["precision"], a["input_format"], _f(a["size_mb"]), _f(a["params"], ",") if a["params"] else "n/a",
          _f(a["gflops"], ".3f"), a["path"]] for a in rep["artifacts"]]) + [""]
    L += ["## Latency (ms per batch)", ""] + _table(
        ["artifact", "provider", "threads", "batch", "p50", "p90", "p99", "mean ± std", "min", "max", "img/s",
         "create s", "first ms", "% peak"],
        [[r["artifact"], r["provider"], r["threads"] or "default", r["batch"], _f(r["p50_ms"]), _f(r["p90_ms"]),
          _f(r["p99_ms"]), f"{_f(r['mean_ms'])} ± {_f(r['std_ms'])}", _f(r["min_ms"]), _f(r["max_ms"]),
          _f(r["throughput_ips"], ".1f"), _f(r["create_s"], ".3f"), _f(r["first_run_ms"], ".1f"), _f(r.get("pct_peak"), ".1f")]
         for r in rep["latency"] if r["status"] == "ok"]) + [""]
    other = [r for r in rep["latency"] if r["status"] != "ok"]
    if other:
        L += [f"- {r['artifact']} on {r['provider']} batch {r['batch']}: {r['status']} ({r['note']})" for r in other] + [""]
    if rep.get("peak"):
        L += ["Measured peak: " + "; ".join(f"{p['method']}: {_f(p['gflops'], '.1f')} GFLOP/s" for p in rep["peak"]), ""]
    if rep.get("ratios"):
        L += ["## Ratios (speedup = reference p50 / candidate p50; > 1 means the candidate is faster)", ""] + _table(
            ["comparison", "provider", "threads", "batch", "speedup"],
            [[x["what"], x["provider"], x["threads"] or "default", x["batch"], f"{x['speedup']:.2f}x"] for x in rep["ratios"]]) + [""]
    for section, title in (("accuracy", "Accuracy and agreement"), ("coldstart", "Cold start and peak RSS"),
                           ("folder", "Folder throughput"), ("overhead", "Runtime overhead vs bare session.run"),
                           ("pipeline", "Video pipeline")):
        block = rep.get(section)
        if block and block.get("rows"):
            head = list(block["rows"][0])
            L += [f"## {title}", ""] + ([block["about"], ""] if block.get("about") else [])
            L += _table(head, [[_f(r.get(h), ".3f") if isinstance(r.get(h), float) else _f(r.get(h)) for h in head]
                               for r in block["rows"]]) + [""]
    if rep.get("charts"):
        L += ["## Charts", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in rep["charts"]] + [""]
    if rep.get("notes"):
        L += ["## Notes", ""] + [f"- {n}" for n in rep["notes"]] + [""]
    return "\n".join(L)


def compare(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows present in both reports: B's p50 and throughput over A's (ratio < 1 p50 = B faster)."""
    def index(rep):
        return {(r["artifact"], r["provider"], r["threads"], r["batch"]): r for r in rep["latency"] if r["status"] == "ok"}

    ia, ib = index(a), index(b)
    out = []
    for k in [k for k in ia if k in ib]:
        ra, rb = ia[k], ib[k]
        out.append({"artifact": k[0], "provider": k[1], "threads": k[2], "batch": k[3],
                    "p50_a_ms": ra["p50_ms"], "p50_b_ms": rb["p50_ms"], "p50_ratio": ratio(rb["p50_ms"], ra["p50_ms"]),
                    "throughput_ratio": ratio(rb["throughput_ips"], ra["throughput_ips"])})
    return out
