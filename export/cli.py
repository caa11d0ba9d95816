"""catdog-export: checkpoint -> TorchScript + ONNX (fp32, and on request INT8, fp16, baked),
published only after parity gates pass. Errors are one line on stderr (traceback with --debug)."""

from pathlib import Path
from typing import List, Optional

import typer

from catdog.export.options import ExportOptions, int8_targets
from catdog.runtime.spine.boundary import cli_boundary, interrupt_exit, interrupted_word, say

app = typer.Typer(add_completion=False, help=__doc__)
D = ExportOptions  # every default below is the dataclass's: it is their one home


@app.command()
@cli_boundary
def export(
    ckpt: Path = typer.Option(..., "--ckpt", help="training checkpoint, e.g. RUN/best.pth"),
    out: Path = typer.Option(..., "--out", help="output folder for the artifacts and the report"),
    int8: bool = typer.Option("cpu" in D.int8_for, "--int8", help="also build model.int8.onnx (needs --calib)"),
    int8_for: List[str] = typer.Option(list(D.int8_for), "--int8-for",
                                       help="INT8 for a target, repeatable (needs --calib): cpu = model.int8.onnx "
                                            "(as --int8); tensorrt = model.int8-trt.onnx, symmetric int8 QDQ"),
    calib: Optional[Path] = typer.Option(D.calib, "--calib", help="folder of real images for INT8 calibration"),
    fp16: bool = typer.Option(D.fp16, "--fp16", help="also build model.fp16.onnx (GPU)"),
    bake: bool = typer.Option(D.bake, "--bake-preprocess", help="also build model.baked.onnx (uint8 NHWC input)"),
    opset: int = typer.Option(D.opset, "--opset", help="ONNX opset"),
    parity: List[Path] = typer.Option(list(D.parity), "--parity",
                                      help="real images for the parity gates, repeatable: each folder is a set, "
                                           "reported and gated on its own (default: a sample of --calib)"),
    parity_count: int = typer.Option(D.parity_count, "--parity-count", help="parity images to sample per set"),
    labels_from_names: bool = typer.Option(D.labels_from_names, "--labels-from-names",
                                           help="labels from Kaggle names (cat.1.jpg)"),
    calib_method: Optional[str] = typer.Option(
        D.calib_method, "--calib-method",
        help="minmax | entropy | percentile (default: minmax or percentile, chosen on held-out calibration images)"),
    int8_target: str = typer.Option(D.int8_target, "--int8-target",
                                    help="the CPUs the CPU INT8 is for: avx2 (U8S8, 7-bit weights: exact on every "
                                         "CPU) | vnni (U8S8, 8-bit weights: AVX-512 VNNI / AVX-VNNI) | arm (S8S8) "
                                         "| auto (this CPU's); recorded in the metadata"),
    int8_activations: Optional[str] = typer.Option(D.int8_activations, "--int8-activations",
                                                   help="override the target's activations: uint8 (U8S8) | int8 "
                                                        "(S8S8)"),
    calib_count: int = typer.Option(D.calib_count, "--calib-count",
                                    help="calibration images (fewer if the folder has fewer)"),
    int8_select: bool = typer.Option(D.int8_select, "--int8-select/--no-int8-select",
                                     help="choose INT8's calibration method and fp32 layers on held-out --calib "
                                          "images, never on parity images (off: minmax, stem + classifier in fp32)"),
    select_count: int = typer.Option(D.select_count, "--select-count",
                                     help="held-out calibration images for the INT8 choice"),
    int8_sensitivity: bool = typer.Option(D.int8_sensitivity, "--int8-sensitivity/--no-int8-sensitivity",
                                          help="measure each INT8 layer's error on the held-out images and keep "
                                               "the most sensitive in fp32 when that closes a gap"),
    sensitivity_count: int = typer.Option(D.sensitivity_count, "--sensitivity-count",
                                          help="held-out images of the per-layer sweep (those INT8 gets most wrong)"),
    sensitivity_keep: int = typer.Option(D.sensitivity_keep, "--sensitivity-keep",
                                         help="at most this many extra layers kept in fp32"),
    tta_flip: bool = typer.Option(D.tta_flip, "--tta-flip",
                                  help="every artifact averages the logits of the image and its mirror image "
                                       "(two passes in the graph, ~2x the latency)"),
    full_decode: bool = typer.Option(D.full_decode, "--full-decode",
                                     help="decode calibration and parity JPEGs at full size, as catdog-runtime "
                                          "--full-decode does (default: libjpeg's reduced decode, as deployed)"),
    gate: List[str] = typer.Option(list(D.gates), "--gate",
                                   help="override a gate: NAME=VALUE, e.g. int8.agreement=0.97"),
    allow_gate_failure: bool = typer.Option(D.allow_gate_failure, "--allow-gate-failure",
                                            help="publish even if a gate fails"),
    latency_runs: int = typer.Option(D.latency_runs, "--latency-runs", help="timed batch-1 runs per artifact"),
    parity_provider: str = typer.Option(D.parity_provider, "--parity-provider",
                                        help="where ONNX parity and latency are measured: cpu | cuda | tensorrt "
                                             "(fp16 computes in fp16 only on a GPU)"),
) -> None:
    from rich.console import Console
    from rich.markup import escape  # paths and messages are the user's text, never rich markup

    # soft_wrap: piped or redirected, a long path stays on its line instead of folding at 80 columns
    err = Console(stderr=True, soft_wrap=True)
    opts = ExportOptions(
        ckpt=ckpt, out=out, int8_for=int8_targets(int8, int8_for), calib=calib, fp16=fp16, bake=bake, opset=opset,
        parity=tuple(parity),
        parity_count=parity_count, labels_from_names=labels_from_names, calib_method=calib_method,
        int8_target=int8_target, int8_activations=int8_activations, calib_count=calib_count, int8_select=int8_select,
        select_count=select_count, int8_sensitivity=int8_sensitivity, sensitivity_count=sensitivity_count,
        sensitivity_keep=sensitivity_keep, tta_flip=tta_flip, full_decode=full_decode, gates=tuple(gate),
        allow_gate_failure=allow_gate_failure, latency_runs=latency_runs, parity_provider=parity_provider,
    )
    try:
        from catdog.export.output.publish import moved_line
        from catdog.export.pipeline import run_export  # torch: loaded only when there is work to do

        with err.status("export") as status:
            report = run_export(opts, progress=lambda msg: status.update(f"[bold]{escape(msg)}"))
    except KeyboardInterrupt as e:  # more to say than the boundary's "interrupted": staging made it safe
        say(f"{interrupted_word(e)}; nothing was published")
        raise typer.Exit(interrupt_exit(e)) from None
    print(report.to_markdown())
    for flag in report.flags():
        err.print(f"[yellow]FLAG[/]: {escape(flag)}")
    if not report.passed:
        err.print("[red]gates failed but --allow-gate-failure published the artifacts anyway[/]")
    err.print(f"[green]published[/] {len(report.artifacts)} artifacts to {escape(str(out))}"
              f"{escape(moved_line(out, report.stale))}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
