"""Everything that reads a report but its charts (charts.py): report.md (the numbers, for people),
written atomically beside report.json with the spine's one table and report writer; the headline
ratios between artifacts; `compare` between two reports; the summary lines `catdog-bench run`
prints. All read report.json's form (dicts), so a report from an older run reads the same way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from catdog.benchmarks.common.config import SECTION_NAMES
from catdog.benchmarks.common.env import env_lines
from catdog.benchmarks.common.schema import SCHEMA, LatencyRow, Ratio, Report
from catdog.benchmarks.common.timing import ratio
from catdog.runtime.spine.errors import InputError
from catdog.runtime.spine.reports import md_table, write_report_pair

# Headline comparisons: (label, faster-candidate artifact, reference artifact). speedup = ref p50 / cand p50.
HEADLINES = (
    ("ORT fp32 vs torch eager", "onnx-fp32", "torch-eager"),
    ("ORT fp32 vs TorchScript", "onnx-fp32", "torchscript"),
    ("TorchScript vs torch eager", "torchscript", "torch-eager"),
    ("INT8 vs fp32", "onnx-int8", "onnx-fp32"),
    ("fp16 vs fp32", "onnx-fp16", "onnx-fp32"),
    ("baked vs fp32", "onnx-baked", "onnx-fp32"),
)


def compute_ratios(rows: list[LatencyRow]) -> list[Ratio]:
    """Per (provider, threads, batch): speedup of each pair in HEADLINES, and provider vs CPU."""
    ok = [r for r in rows if r.stats is not None]
    p50 = {(r.provider, r.threads, r.batch, r.artifact): r.stats.p50_ms for r in ok if r.stats}
    out = []
    for provider, threads, batch in sorted({(r.provider, r.threads, r.batch) for r in ok},
                                           key=lambda k: (k[0], k[1] or 0, k[2])):
        for label, cand, ref in HEADLINES:
            s = ratio(p50.get((provider, threads, batch, ref)), p50.get((provider, threads, batch, cand)))
            if s is not None:
                out.append(Ratio(label, provider, threads, batch, cand, ref, s))
    cpu_best: dict[tuple[str, int], float] = {}  # fastest CPU thread setting per artifact, batch
    for r in ok:
        if r.provider == "cpu" and r.stats:
            k = (r.artifact, r.batch)
            cpu_best[k] = min(cpu_best.get(k, float("inf")), r.stats.p50_ms)
    for r in ok:
        if r.provider != "cpu" and (r.artifact, r.batch) in cpu_best and r.stats:
            out.append(Ratio(f"{r.provider} vs best CPU", r.provider, None, r.batch, r.artifact, f"{r.artifact}@cpu",
                             cpu_best[(r.artifact, r.batch)] / r.stats.p50_ms))
    return out


def write_report(report: Report, out_dir: Path) -> tuple[Path, Path]:
    """report.json (report.to_dict(), keys in field order) and report.md beside it, each written atomically."""
    data = report.to_dict()
    return write_report_pair(out_dir, "report", data, render_md(data), sort_keys=False)


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


def where(rep: dict[str, Any], provider: str, artifact: str) -> str:
    """The provider cell; a CPU INT8 figure names the integer path it ran on (runtime/spine/isa.py)."""
    path = rep["env"].get("int8_path")
    return f"{provider} ({path})" if provider == "cpu" and "int8" in artifact and path else provider


def _latency_md(rep: dict[str, Any]) -> list[str]:
    head = ["artifact", "provider", "threads", "batch", "p50", "p90", "p99", "mean ± std", "min", "max", "img/s",
            "create s", "first ms", "% peak"]
    rows = [[r["artifact"], where(rep, r["provider"], r["artifact"]), r["threads"] or "default", r["batch"],
             _f(r["p50_ms"]), _f(r["p90_ms"]),
             _f(r["p99_ms"]), f"{_f(r['mean_ms'])} ± {_f(r['std_ms'])}", _f(r["min_ms"]), _f(r["max_ms"]),
             _f(r["throughput_ips"], ".1f"), _f(r["create_s"], ".3f"), _f(r["first_run_ms"], ".1f"),
             _f(r.get("pct_peak"), ".1f")]
            for r in rep["latency"] if r["status"] == "ok"]
    L = ["## Latency (ms per batch)", ""] + md_table(head, rows) + [""]
    other = [r for r in rep["latency"] if r["status"] != "ok"]
    if other:
        L += [f"- {r['artifact']} on {r['provider']} batch {r['batch']}: {r['status']} ({r['note']})"
              for r in other] + [""]
    if rep.get("peak"):
        L += ["Measured peak: " + "; ".join(f"{p['method']}: {_f(p['gflops'], '.1f')} GFLOP/s" for p in rep["peak"]),
              ""]
    if rep.get("ratios"):
        L += ["## Ratios (speedup = reference p50 / candidate p50; > 1 means the candidate is faster)", ""]
        L += md_table(["comparison", "provider", "threads", "batch", "speedup"],
                    [[x["what"], where(rep, x["provider"], x["candidate"]), x["threads"] or "default", x["batch"],
                      f"{x['speedup']:.2f}x"]
                     for x in rep["ratios"]]) + [""]
    return L


SECTION_TITLES = (("accuracy", "Accuracy and agreement"), ("coldstart", "Cold start and peak RSS"),
                  ("folder", "Folder throughput"), ("overhead", "Runtime overhead vs bare session.run"),
                  ("large", "Large photos: reduced vs full JPEG decode"), ("pipeline", "Video pipeline"),
                  ("scale", "Scale out on Ray (catdog-bench scale)"))


def _sections_md(rep: dict[str, Any]) -> list[str]:
    L: list[str] = []
    for section, title in SECTION_TITLES:
        block = rep.get(section)
        if block and block.get("rows"):
            head = list(block["rows"][0])
            L += [f"## {title}", ""] + ([block["about"], ""] if block.get("about") else [])
            L += md_table(head, [[_f(r.get(h), ".3f") if isinstance(r.get(h), float) else _f(r.get(h)) for h in head]
                               for r in block["rows"]]) + [""]
            if rep["env"].get("int8_path") and any("int8" in str(v).lower() for r in block["rows"] for v in r.values()):
                L += [f"INT8 rows on the CPU ran on its {rep['env']['int8_path']} integer kernels.", ""]
    return L


def render_md(rep: dict[str, Any]) -> str:
    L = [f"# catdog-bench report: {rep['name']}", "", f"Created {rep['created']} with `{rep['command']}`.", ""]
    L += ["## Environment", ""] + [f"- {x}" for x in env_lines(rep["env"])] + [""]
    c = rep["config"]
    timed = f"{c['iters']} timed runs" if c["iters"] else f"{c['seconds']} s"
    L += [f"Input: {c['input']}. Warm-up {c['warmup']}, {timed} per artifact in interleaved blocks of {c['block']}.",
          ""]
    L += ["## Artifacts", ""] + md_table(
        ["artifact", "kind", "precision", "input", "size MB", "params", "GFLOPs/img", "file"],
        [[a["name"], a["kind"], a["precision"], a["input_format"], _f(a["size_mb"]),
          _f(a["params"], ",") if a["params"] else "n/a", _f(a["gflops"], ".3f"), a["path"]]
         for a in rep["artifacts"]]) + [""]
    L += (_latency_md(rep) if rep["latency"] else []) + _sections_md(rep)  # `scale` reports have no latency grid
    if rep.get("charts"):
        L += ["## Charts", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in rep["charts"]] + [""]
    if rep.get("notes"):
        L += ["## Notes", ""] + [f"- {n}" for n in rep["notes"]] + [""]
    return "\n".join(L)


def compare(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows present in both reports: B's p50 and throughput over A's (ratio < 1 p50 = B faster)."""
    def index(rep: dict[str, Any]) -> dict[tuple, dict[str, Any]]:
        return {(r["artifact"], r["provider"], r["threads"], r["batch"]): r
                for r in rep["latency"] if r["status"] == "ok"}

    ia, ib = index(a), index(b)
    out = []
    for k in [k for k in ia if k in ib]:
        ra, rb = ia[k], ib[k]
        out.append({"artifact": k[0], "provider": k[1], "threads": k[2], "batch": k[3],
                    "p50_a_ms": ra["p50_ms"], "p50_b_ms": rb["p50_ms"], "p50_ratio": ratio(rb["p50_ms"], ra["p50_ms"]),
                    "throughput_ratio": ratio(rb["throughput_ips"], ra["throughput_ips"])})
    return out


def summary_lines(rep: dict[str, Any]) -> list[str]:
    """What `catdog-bench run` prints when done: the latency rows, the ratios, one line per section row."""
    lines = [f"{'artifact':<14} {'provider':<9} {'thr':>4} {'batch':>5} {'p50 ms':>9} {'p90 ms':>9} {'img/s':>9} "
             f"{'%peak':>6}"] if rep["latency"] else []
    for r in rep["latency"]:
        if r["status"] == "ok":
            pk = f"{r['pct_peak']:.1f}" if r.get("pct_peak") else "n/a"
            lines.append(f"{r['artifact']:<14} {r['provider']:<9} {str(r['threads'] or '-'):>4} {r['batch']:>5} "
                         f"{r['p50_ms']:>9.2f} {r['p90_ms']:>9.2f} {r['throughput_ips']:>9.1f} {pk:>6}")
    for x in rep["ratios"]:
        lines.append(f"{x['what']} ({where(rep, x['provider'], x['candidate'])}, threads {x['threads'] or '-'}, "
                     f"batch {x['batch']}): "
                     f"{x['speedup']:.2f}x")
    for key in (*SECTION_NAMES, "scale"):  # scale: written by `catdog-bench scale`, never by `run`
        block = rep.get(key)
        for row in (block or {}).get("rows", []):
            lines.append(f"{key}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                for k, v in row.items() if k != "output"))
        if block and block.get("error"):
            lines.append(f"{key}: not measured: {block['error']}")
    return lines

