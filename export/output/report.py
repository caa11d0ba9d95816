"""export-report.json (machine-readable) and export-report.md (the tables for humans), both written
atomically, on success and on gate failure alike (the report says why nothing was published; over
an earlier export it is export-report.failed.*, see publish.py).
Parity is reported per set; every accuracy carries its 95% Wilson interval and image count."""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from catdog.export.output.report_sections import disagreement_lines, per_class_lines, sensitivity_lines
from catdog.export.verify.parity import ECE_BINS, ArtifactInfo, ArtifactParity
from catdog.runtime.spine.isa import SAFE_WEIGHT, SATURATING, int8_path
from catdog.runtime.spine.metrics import format_accuracy
from catdog.runtime.spine.reports import md_table, write_report_pair

REPORT_STEM, FAILED_STEM = "export-report", "export-report.failed"  # .failed: a gate failure over an export
REPORT_JSON, REPORT_MD = f"{REPORT_STEM}.json", f"{REPORT_STEM}.md"
FAILED_JSON, FAILED_MD = f"{FAILED_STEM}.json", f"{FAILED_STEM}.md"


def _acc(record: dict[str, Any] | None) -> str:
    return "n/a" if record is None else format_accuracy(int(record["correct"]), int(record["n"]))


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


@dataclass
class ParitySet:
    """One --parity folder: its images, the eager reference's figures, every artifact's parity."""

    name: str  # the folder, as given
    images: int
    labels: str | None  # how labels were known, or None
    eager_accuracy: dict[str, Any] | None  # runtime.metrics.accuracy_record
    eager_ece: float | None = None
    eager_ece_calibrated: float | None = None
    artifacts: list[ArtifactParity] = field(default_factory=list)
    skipped_images: list[str] = field(default_factory=list)
    # gallery.attach: [{"class", "n", "correct": {"eager" | artifact: count}}] (labelled sets), and per
    # INT8 artifact the photos whose top-1 class is not fp32 ONNX's ({"count", "rows", "gallery", ...})
    per_class: list[dict[str, Any]] = field(default_factory=list)
    disagreements: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(a.passed for a in self.artifacts)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "artifacts"}
        d["artifacts"], d["passed"] = [a.to_dict() for a in self.artifacts], self.passed
        return d


@dataclass
class ExportReport:
    checkpoint: str
    checkpoint_sha256: str
    arch: str
    classes: list[str]
    opset: int
    exporter: str
    temperature: float = 1.0  # stamped into every artifact's metadata
    calibration: dict[str, Any] | None = None  # the checkpoint's record of how T was fitted
    tta: str | None = None  # "hflip" with --tta-flip
    parity_sets: list[ParitySet] = field(default_factory=list)
    artifacts: list[ArtifactInfo] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    skipped_images: list[str] = field(default_factory=list)  # unreadable calibration images
    published: bool = False
    gate_failure_allowed: bool = False
    stale: list[dict[str, str]] = field(default_factory=list)  # an older export's files moved aside on publish
    int8_path: str = field(default_factory=int8_path)  # this CPU's integer path (runtime/spine/isa.py)

    @property
    def passed(self) -> bool:
        return all(s.passed for s in self.parity_sets)

    def int8_notes(self) -> list[str]:
        """What the INT8 figures mean on this CPU: a gate measured for one target on another, and
        what this CPU's kernels gave for a model gated by simulation."""
        out = []
        for name, info in self.details.items():
            if not isinstance(info, dict) or "max_int8_weight" not in info:
                continue
            rows = [a for s in self.parity_sets for a in s.artifacts if a.name == name]
            top = info["max_int8_weight"]
            if any(a.cpu_kernels for a in rows):
                figs = ", ".join(f"top-1 agreement {a.cpu_kernels['top1_agreement']:.3f} on `{a.parity_set}`"
                                 for a in rows if a.cpu_kernels)
                why = (f"its weights reach |{top}| > {SAFE_WEIGHT}, which saturates the int16 pair sums of "
                       f"{self.int8_path}'s kernels" if self.int8_path in SATURATING and top > SAFE_WEIGHT
                       else "no saturation is possible on this path, so any difference is rounding")
                out.append(f"{name}: gates measured for its target by {rows[0].measured_on}, not on this CPU's "
                           f"integer kernels; on those ({self.int8_path}): {figs}; {why}")
            elif rows and top > SAFE_WEIGHT and self.int8_path not in SATURATING:
                out.append(f"{name}: measured on {self.int8_path}, whose kernels accumulate in int32; its weights "
                           f"reach |{top}| > {SAFE_WEIGHT}, so on AVX2 or AVX-512 without VNNI its figures can be "
                           "worse (int16 saturation): export with --int8-target avx2 (7-bit weights) for those")
        return out

    @property
    def failures(self) -> list[str]:
        return [r for s in self.parity_sets for a in s.artifacts for r in a.reasons]

    def artifact_passed(self, name: str) -> bool:
        return all(a.passed for s in self.parity_sets for a in s.artifacts if a.name == name)

    def reasons(self, name: str) -> list[str]:
        return [r for s in self.parity_sets for a in s.artifacts if a.name == name for r in a.reasons]

    def flags(self) -> list[str]:
        by = {a.name: a for a in self.artifacts}
        out = []
        if "int8" in by and "onnx" in by and by["int8"].latency_ms > by["onnx"].latency_ms:
            where = by["int8"].latency_runtime  # ORT CPU unless --parity-provider
            where = f"this CPU ({self.int8_path})" if where.startswith("ORT CPU") else where
            machine = platform.processor() or platform.machine()
            out.append(f"INT8 is SLOWER than fp32 on {where} ({by['int8'].latency_ms:.2f} ms vs "
                       f"{by['onnx'].latency_ms:.2f} ms, {machine}); prefer model.onnx here")
        return out

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k not in ("artifacts", "parity_sets")}
        d["parity_sets"] = [s.to_dict() for s in self.parity_sets]
        d["artifacts"] = [{**asdict(a), "passed": self.artifact_passed(a.name), "reasons": self.reasons(a.name)}
                          for a in self.artifacts]
        d["passed"], d["failures"], d["flags"] = self.passed, self.failures, self.flags()
        d["int8_notes"] = self.int8_notes()
        return d

    def _scores_line(self) -> str:
        cal = self.calibration or {}
        if self.temperature == 1.0 and not cal:
            return "- scores: softmax(logits), temperature 1 (the checkpoint carries no fitted temperature)"
        fitted = ""
        if cal.get("ece_before") is not None and cal.get("ece_after") is not None:
            bins = cal.get("ece_bins", ECE_BINS)
            fitted = (f" (fitted on {cal.get('val_images', '?')} validation images: ECE, {bins} bins, "
                      f"{_pct(cal['ece_before'])} -> {_pct(cal['ece_after'])})")
        return f"- scores: softmax(logits / T), temperature {self.temperature:.4g} in every artifact's metadata{fitted}"

    def to_markdown(self) -> str:
        lines = [
            f"# Export report: {self.arch} ({', '.join(self.classes)})",
            "",
            f"- checkpoint: `{self.checkpoint}` (sha256 `{self.checkpoint_sha256[:16]}…`)",
            f"- ONNX opset {self.opset}, exporter: {self.exporter}",
            self._scores_line(),
        ]
        if self.tta:
            lines.append("- test-time augmentation: horizontal flip; every artifact averages the logits of the "
                         "image and its mirror image (two passes inside the graph)")
        lines += [
            f"- CPU integer path: {self.int8_path} (ORT's CPU INT8 kernels here; see the measured-on column)",
            f"- parity: {len(self.parity_sets)} set(s), every gate checked on each",
            f"- result: {'all gates PASS' if self.passed else 'GATE FAILURE'}; artifacts "
            + ("published" if self.published else "NOT published")
            + (f"; {len(self.stale)} stale file(s) of an older export moved aside (below)" if self.stale else ""),
            "",
        ]
        lines += md_table(("artifact", "file", "size MB", "latency ms (median, b=1)", "gates (every set)"),
                          [(a.name, a.file, f"{a.size_mb:.2f}", f"{a.latency_ms:.2f} ({a.latency_runtime})",
                            "PASS" if self.artifact_passed(a.name) else "FAIL") for a in self.artifacts],
                          right=(2, 3))
        for s in self.parity_sets:
            lines += self._set_lines(s) + per_class_lines(s.per_class)
        lines += disagreement_lines(self.parity_sets, self.temperature)
        lines += self._int8_choice_lines()
        lines += sensitivity_lines(self.details)
        lines.append("")
        if any(g.overridden for s in self.parity_sets for a in s.artifacts for g in a.gates):
            lines.append("`*` gate limit overridden on the command line.")
        for flag in self.flags():
            lines.append(f"- **FLAG**: {flag}")
        for name, note in self.notes.items():
            lines.append(f"- {name}: {note}")
        for note in self.int8_notes():
            lines.append(f"- **INT8** {note}")
        for reason in self.failures:
            lines.append(f"- **FAIL** {reason}")
        for s in self.skipped_images + [x for p in self.parity_sets for x in p.skipped_images]:
            lines.append(f"- skipped image: {s}")
        for m in self.stale:
            lines.append(f"- **stale**: `{m['file']}`, left by an older export, is not this export's: moved aside "
                         f"to `{m['moved_to']}`")
        return "\n".join(lines) + "\n"

    def _set_lines(self, s: ParitySet) -> list[str]:
        t = f"T={self.temperature:.4g}"
        summary = f"{s.images} real images; labels: {s.labels or 'none'}"
        if s.eager_accuracy is not None:
            summary += (f"; eager PyTorch accuracy {_acc(s.eager_accuracy)}, ECE ({ECE_BINS} bins) "
                     f"{_pct(s.eager_ece)} at T=1, {_pct(s.eager_ece_calibrated)} at {t}")
        columns = ("artifact", "max abs dlogit", "max abs dprob", "top-1 agree", "accuracy (95% CI, n)", "ECE T=1",
                   f"ECE {t}", "gates", "measured on")
        rows = [(a.name, f"{a.max_abs_logit:.2e}", f"{a.max_abs_prob:.2e}", f"{a.top1_agreement:.2%}", _acc(a.accuracy),
                 _pct(a.ece), _pct(a.ece_calibrated), _gates_cell(a), a.measured_on) for a in s.artifacts]
        return (["", f"## Parity on `{s.name}`: {'PASS' if s.passed else 'FAIL'}", "", summary, ""]
                + md_table(columns, rows, right=range(1, 7)))

    def _int8_choice_lines(self) -> list[str]:
        choice = self.details.get("int8_choice")
        if not choice:
            return []
        lines = ["", "## INT8 choices", "",
                 f"{choice['method']} calibration, kept fp32: {choice['keep_fp32']}; {choice['how']}."]
        if choice["candidates"]:
            rows = [(c["method"], c["keep_fp32"], f"{c['agree']}/{c['n']} ({c['agreement']:.2%})",
                     f"{c['max_abs_prob']:.2e}", f"{c['max_abs_logit']:.2e}",
                     "chosen" if (c["method"], c["keep_fp32"]) == (choice["method"], choice["keep_fp32"]) else "")
                    for c in choice["candidates"]]
            table = md_table(("calibration", "kept fp32", "top-1 agree with fp32", "max abs dprob", "max abs dlogit",
                              ""), rows, right=(2, 3, 4))
            # md_table writes the unnamed column's header as "|  |"; reports have always said "| |"
            table[0] = table[0].removesuffix("|  |") + "| |"
            lines += [""] + table
        return lines


def _gates_cell(a: ArtifactParity) -> str:
    return "; ".join(f"{g.name} {g.op} {g.limit:g}{'*' if g.overridden else ''}: "
                     + {True: "PASS", False: "FAIL", None: "n/a"}[g.passed] for g in a.gates)


def write_report(report: ExportReport, out_dir: Path, stem: str = REPORT_STEM) -> tuple[Path, Path]:
    """`<stem>.json` and `<stem>.md` in `out_dir` (publish.report_stem says which stem), each atomically."""
    return write_report_pair(out_dir, stem, report.to_dict(), report.to_markdown())
