"""export-report.json (machine-readable) and export-report.md (the table for humans), both written
atomically, on success and on gate failure alike (the report says why nothing was published)."""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catdog.export.parity import ArtifactParity
from catdog.runtime.files import atomic_write

REPORT_JSON, REPORT_MD = "export-report.json", "export-report.md"


@dataclass
class ExportReport:
    checkpoint: str
    checkpoint_sha256: str
    arch: str
    classes: list[str]
    opset: int
    exporter: str
    parity_images: int
    parity_source: str
    labels: str | None  # how labels were known, or None
    eager_accuracy: float | None
    artifacts: list[ArtifactParity] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    skipped_images: list[str] = field(default_factory=list)
    published: bool = False
    gate_failure_allowed: bool = False

    @property
    def passed(self) -> bool:
        return all(a.passed for a in self.artifacts)

    @property
    def failures(self) -> list[str]:
        return [r for a in self.artifacts for r in a.reasons]

    def flags(self) -> list[str]:
        by = {a.name: a for a in self.artifacts}
        out = []
        if "int8" in by and "onnx" in by and by["int8"].latency_ms > by["onnx"].latency_ms:
            out.append(
                f"INT8 is SLOWER than fp32 on this CPU ({by['int8'].latency_ms:.2f} ms vs "
                f"{by['onnx'].latency_ms:.2f} ms, {platform.processor() or platform.machine()}); prefer model.onnx here"
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "artifacts"}
        d["artifacts"] = [a.to_dict() for a in self.artifacts]
        d["passed"], d["failures"], d["flags"] = self.passed, self.failures, self.flags()
        return d

    def to_markdown(self) -> str:
        lines = [
            f"# Export report: {self.arch} ({', '.join(self.classes)})",
            "",
            f"- checkpoint: `{self.checkpoint}` (sha256 `{self.checkpoint_sha256[:16]}…`)",
            f"- ONNX opset {self.opset}, exporter: {self.exporter}",
            f"- parity: {self.parity_images} real images from `{self.parity_source}`; labels: {self.labels or 'none'}"
            + ("" if self.eager_accuracy is None else f"; eager PyTorch accuracy {self.eager_accuracy:.2%}"),
            f"- result: {'all gates PASS' if self.passed else 'GATE FAILURE'}; artifacts "
            + ("published" if self.published else "NOT published"),
            "",
            "| artifact | file | size MB | latency ms (median, b=1) | max abs dlogit | max abs dprob | top-1 agree "
            "| accuracy | gates |",
            "|---|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for a in self.artifacts:
            gates = "; ".join(
                f"{g.name} {g.op} {g.limit:g}{'*' if g.overridden else ''}: "
                + {True: "PASS", False: "FAIL", None: "n/a"}[g.passed]
                for g in a.gates
            )
            acc = "n/a" if a.accuracy is None else f"{a.accuracy:.2%}"
            lines.append(
                f"| {a.name} | {a.file} | {a.size_mb:.2f} | {a.latency_ms:.2f} ({a.latency_runtime}) | "
                f"{a.max_abs_logit:.2e} | {a.max_abs_prob:.2e} | {a.top1_agreement:.2%} | {acc} | {gates} |"
            )
        lines.append("")
        if any(g.overridden for a in self.artifacts for g in a.gates):
            lines.append("`*` gate limit overridden on the command line.")
        for flag in self.flags():
            lines.append(f"- **FLAG**: {flag}")
        for name, note in self.notes.items():
            lines.append(f"- {name}: {note}")
        for reason in self.failures:
            lines.append(f"- **FAIL** {reason}")
        for s in self.skipped_images:
            lines.append(f"- skipped image: {s}")
        return "\n".join(lines) + "\n"


def write_report(report: ExportReport, out_dir: Path) -> tuple[Path, Path]:
    js = atomic_write(out_dir / REPORT_JSON, json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n")
    md = atomic_write(out_dir / REPORT_MD, report.to_markdown())
    return js, md
