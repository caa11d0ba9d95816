"""export-report.md's sections on what INT8 changes: per-class accuracy of every artifact on each
parity set, the photos where an INT8 artifact and fp32 ONNX disagree (gallery.py fills them in),
and the per-layer sensitivity of each INT8 artifact (int8/sensitivity.py). Each reads the report's
plain data (the dicts its JSON holds), so report.py only places them."""

from __future__ import annotations

from typing import Any, Sequence

from catdog.runtime.spine.reports import md_table

MANY_CLASSES, WORST = 20, 10  # above MANY_CLASSES, the per-class table shows the WORST classes only
MAX_ROWS = 50  # disagreement rows per set and artifact in the Markdown (the JSON has them all)
TOP_LAYERS = 10  # sensitivity rows (and every kept layer)


def _frac(k: int, n: int) -> str:
    return f"{100 * k / n:.1f}% ({k}/{n})" if n else "n/a"


def per_class_lines(per_class: list[dict[str, Any]]) -> list[str]:
    if not per_class:
        return []
    who = list(per_class[0]["correct"])
    rows = per_class
    note = ""
    if len(per_class) > MANY_CLASSES:
        def worst(r: dict[str, Any]) -> tuple[float, int, str]:
            return min(r["correct"][w] / r["n"] for w in who), -r["n"], r["class"]

        rows = sorted(per_class, key=worst)[:WORST]
        note = f" (the {WORST} worst of {len(per_class)} classes, by their lowest accuracy in any column)"
    table = md_table(("class", "n", *who), [(r["class"], r["n"], *(_frac(r["correct"][w], r["n"]) for w in who))
                                           for r in rows], right=range(1, len(who) + 2))
    return ["", f"Per-class accuracy{note}:", ""] + table


def _answer(a: dict[str, Any]) -> str:
    return f"{a['class']} {a['score']:.3f}"


def disagreement_lines(sets: Sequence[Any], temperature: float) -> list[str]:
    """`sets`: the report's ParitySets, their `disagreements` filled in by gallery.attach."""
    found = [(i, s, name, d) for i, s in enumerate(sets, start=1) for name, d in s.disagreements.items()]
    if not found:
        return []
    lines = ["", "## INT8 vs fp32 disagreements", ""]
    if not any(d["count"] for *_, d in found):
        return lines + [f"None: every INT8 artifact ({', '.join(dict.fromkeys(n for _, _, n, _ in found))}) gives the "
                        "fp32 ONNX graph's top-1 class on every photo of every parity set."]
    lines.append(f"Photos whose top-1 class from an INT8 artifact is not the fp32 ONNX graph's; scores are "
                 f"softmax(logits / T), T={temperature:.4g}, as the runtime shows them; most confident fp32 first.")
    for i, s, name, d in found:
        head = f"`{name}` vs `{d['against']}` on `{s.name}` (set {i}): {d['count']} of {d['of']} photos disagree"
        if not d["count"]:
            lines += ["", f"- {head}."]
            continue
        grid = f"; grid: `{d['gallery']}`" if d.get("gallery") else ""
        lines += ["", f"### {head}{grid}", ""]
        rows = [(r["file"], r["label"] or "?", _answer(r["fp32"]), _answer(r["int8"])) for r in d["rows"][:MAX_ROWS]]
        lines += md_table(("file", "true label", f"fp32 ({d['against']})", name), rows)
        if d["count"] > MAX_ROWS:
            lines.append(f"… {d['count'] - MAX_ROWS} more (every row is in the report's JSON)")
    return lines


def _db(v: float | None) -> str:
    return "exact" if v is None else f"{v:.1f}"


def sensitivity_lines(details: dict[str, Any]) -> list[str]:
    choices = [(name.removesuffix("_choice"), c) for name, c in details.items()
               if name.endswith("_choice") and isinstance(c, dict) and "sensitivity_why" in c]
    if not choices:
        return []
    lines = ["", "## INT8 per-layer sensitivity"]
    for name, c in choices:
        s = c.get("sensitivity")
        if not s:
            lines += ["", f"`{name}`: {c['sensitivity_why']}."]
            continue
        base = s["base"]
        lines += ["", (f"`{name}`: measured on {s['images']} held-out calibration images only (never the parity "
                       "sets), those where the INT8 model is furthest from fp32 (a different class first, then "
                       "the largest logit error): each quantized layer quantized alone in the fp32 graph, as in "
                       "the chosen INT8 model "
                       f"(fake quantization in float). The INT8 model's logit SQNR on them: {_db(base['sqnr_db'])} dB; "
                       f"the layers' shares of its logit error power add up to {s['share_sum']:.2f}. {s['how']}. "
                       f"Sweep {s['sweep_s']:.1f} s, in all {s['total_s']:.1f} s.")]
        lat = s.get("latency")
        if lat:
            lines[-1] += (f" Speed cost of the kept layers: {lat['chosen_ms']:.2f} ms vs {lat['without_kept_ms']:.2f} "
                          f"ms without them ({lat['measured_on']}).")
        shown = s["layers"][:TOP_LAYERS] + [r for r in s["layers"][TOP_LAYERS:] if r["kept"]]
        rows = [(r["node"], r["op"], r["quantized"], f"{100 * r['share']:.1f}%", _db(r["alone"]["sqnr_db"]),
                 f"{r['alone']['max_abs_logit']:.2e}", f"{r['alone']['mean_abs_logit']:.2e}",
                 f"{r['alone']['agree']}/{r['alone']['n']}", "yes" if r["kept"] else "") for r in shown]
        lines += ["", *md_table(("layer", "op", "quantized", "share of INT8 logit error", "logit SQNR dB (alone)",
                                 "max abs dlogit", "mean abs dlogit", "top-1 agree", "kept fp32"), rows,
                                right=range(3, 8))]
        if len(s["layers"]) > len(shown):
            lines.append(f"… {len(s['layers']) - len(shown)} more layers (all in the report's JSON)")
        if len(s["tried"]) > 1:
            lines += ["", *md_table(("extra fp32 layers", "top-1 agree with fp32 (held-out)", "max abs dprob",
                                     "max abs dlogit"),
                                    [(t["k"], f"{t['agree']}/{t['n']}", f"{t['max_abs_prob']:.2e}",
                                      f"{t['max_abs_logit']:.2e}") for t in s["tried"]], right=range(0, 4))]
    return lines
