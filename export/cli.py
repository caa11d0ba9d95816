"""catdog-export: checkpoint -> TorchScript + ONNX (fp32, and on request INT8, fp16, baked),
published only after parity gates pass. Errors are one line on stderr (traceback with --debug)."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import List, Optional

import typer

from catdog.runtime.errors import CatdogError

app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def export(
    ckpt: Path = typer.Option(..., "--ckpt", help="training checkpoint, e.g. RUN/best.pth"),
    out: Path = typer.Option(..., "--out", help="output folder for the artifacts and the report"),
    int8: bool = typer.Option(False, "--int8", help="also build model.int8.onnx (needs --calib)"),
    calib: Optional[Path] = typer.Option(None, "--calib", help="folder of real images for INT8 calibration"),
    fp16: bool = typer.Option(False, "--fp16", help="also build model.fp16.onnx (GPU)"),
    bake: bool = typer.Option(False, "--bake-preprocess", help="also build model.baked.onnx (uint8 NHWC input)"),
    opset: int = typer.Option(17, "--opset", help="ONNX opset"),
    parity: Optional[Path] = typer.Option(None, "--parity", help="real images for the parity gates (default: a sample of --calib)"),
    parity_count: int = typer.Option(100, "--parity-count", help="parity images to sample"),
    labels_from_names: bool = typer.Option(False, "--labels-from-names", help="labels from Kaggle names (cat.1.jpg)"),
    calib_method: str = typer.Option("minmax", "--calib-method", help="minmax | entropy | percentile"),
    int8_activations: str = typer.Option("uint8", "--int8-activations",
                                         help="uint8 (U8S8 with 7-bit weights: fast on x86 AVX2) | int8 (S8S8)"),
    calib_count: int = typer.Option(200, "--calib-count", help="calibration images (fewer if the folder has fewer)"),
    gate: List[str] = typer.Option([], "--gate", help="override a gate: NAME=VALUE, e.g. int8.agreement=0.97"),
    allow_gate_failure: bool = typer.Option(False, "--allow-gate-failure", help="publish even if a gate fails"),
    latency_runs: int = typer.Option(50, "--latency-runs", help="timed batch-1 runs per artifact"),
    debug: bool = typer.Option(False, "--debug", help="show tracebacks"),
) -> None:
    from rich.console import Console

    err = Console(stderr=True)
    try:
        from catdog.export.pipeline import ExportOptions, run_export

        opts = ExportOptions(
            ckpt=ckpt, out=out, int8=int8, calib=calib, fp16=fp16, bake=bake, opset=opset, parity=parity,
            parity_count=parity_count, labels_from_names=labels_from_names, calib_method=calib_method,
            int8_activations=int8_activations, calib_count=calib_count, gates=tuple(gate), allow_gate_failure=allow_gate_failure,
            latency_runs=latency_runs,
        )
        with err.status("export") as status:
            report = run_export(opts, progress=lambda msg: status.update(f"[bold]{msg}"))
    except CatdogError as e:
        if debug:
            traceback.print_exc()
        print(f"catdog-export: error: {e}", file=sys.stderr)
        raise typer.Exit(e.exit_code)
    except KeyboardInterrupt:
        print("catdog-export: interrupted; nothing was published", file=sys.stderr)
        raise typer.Exit(130)
    except Exception as e:  # a bug or a library failure: still one line unless --debug
        if debug:
            traceback.print_exc()
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        print(f"catdog-export: internal error: {type(e).__name__}: {first} (rerun with --debug)", file=sys.stderr)
        raise typer.Exit(1)
    print(report.to_markdown())
    for flag in report.flags():
        err.print(f"[yellow]FLAG[/]: {flag}")
    if not report.passed:
        err.print("[red]gates failed but --allow-gate-failure published the artifacts anyway[/]")
    err.print(f"[green]published[/] {len(report.artifacts)} artifacts to {out}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
