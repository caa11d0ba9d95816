"""The optional report sections, each added when its input is given: accuracy/agreement and folder
throughput (--data), cold start and runtime overhead (always, on the fp32 ONNX), video pipeline
(--video). A section that fails records its one-line error in the report instead of losing the run."""

from __future__ import annotations

from typing import Any, Callable

from catdog.runtime.errors import CatdogError
from catdog.runtime.spec import PreprocessSpec

Log = Callable[[str], None]


def _primary(arts: list) -> Any:
    """The artifact the runtime-facing sections use: fp32 ONNX, else the first float ONNX."""
    onnx = [a for a in arts if a.kind == "onnx"]
    return next((a for a in onnx if a.name == "onnx-fp32"), None) or next((a for a in onnx if not a.uint8_input), None)


def _section(report: dict[str, Any], key: str, fn: Callable[[], dict[str, Any]], log: Log) -> None:
    try:
        report[key] = fn()
        log(f"{key}: done")
    except (CatdogError, ImportError) as e:  # ImportError: an optional package or module is missing
        report[key] = {"error": str(e), "rows": []}
        report["notes"].append(f"{key} section failed: {e}")
        log(f"{key}: failed: {e}")


def _call(module: str, fn: str, *args: Any) -> dict[str, Any]:
    """Import the section's module only when it runs (its imports may be optional packages)."""
    import importlib

    return getattr(importlib.import_module(f"catdog.benchmarks.{module}"), fn)(*args)


def add_sections(report: dict[str, Any], cfg: Any, arts: list, spec: PreprocessSpec, log: Log) -> None:
    primary = _primary(arts)
    if cfg.data is not None and "accuracy" in cfg.extras:
        _section(report, "accuracy", lambda: _call("accuracy", "accuracy_section", arts, cfg, spec), log)
    if primary is None:
        report["notes"].append("no float ONNX artifact: cold start, overhead, folder and video sections left out")
        return
    if "coldstart" in cfg.extras and cfg.coldstart_runs > 0:
        _section(report, "coldstart", lambda: _call("coldstart", "coldstart_section", primary, arts, cfg, log), log)
    if "folder" in cfg.extras:
        _section(report, "overhead", lambda: _call("folder", "overhead_section", primary, cfg, spec), log)
        if cfg.data is not None:
            _section(report, "folder", lambda: _call("folder", "folder_section", primary, arts, cfg, spec), log)
    if cfg.video is not None and "pipeline" in cfg.extras:
        _section(report, "pipeline", lambda: _call("pipeline", "pipeline_section", primary, cfg, spec), log)
