"""catdog-export: checkpoint -> TorchScript + ONNX (fp32, and on request INT8, fp16, baked),
published only after parity gates pass. Errors are one line on stderr (traceback with --debug)."""

import inspect
import types
import typing
from dataclasses import MISSING, Field, fields
from typing import Any, Optional, cast

import typer

from catdog.export.options import INT8_CPU, ExportOptions, int8_targets
from catdog.runtime.options import Opt, option_of
from catdog.runtime.spine.boundary import cli_boundary, interrupt_exit, interrupted_word, say

app = typer.Typer(add_completion=False, help=__doc__)


def _option(name: str, o: Opt, t: Any, default: object) -> inspect.Parameter:
    """One typer option. The ranges are not typer's: the pipeline checks them (a library caller's
    ExportOptions too), so a count out of range is its one-line error, as it always was."""
    kind = list[t] if o.repeatable else t  # type: ignore[valid-type]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                             annotation=t if t is bool or default is ... else Optional[kind],
                             default=typer.Option(default, *o.flags, help=o.help))


def _signature() -> inspect.Signature:
    """One keyword per ExportOptions field (no default: a required option), and --int8 just
    before --int8-for, whose other spelling it is."""
    hints, params = typing.get_type_hints(ExportOptions), []
    for f in fields(ExportOptions):
        if f.name == "int8_for":
            params.append(_option("int8", INT8_CPU, bool, "cpu" in cast(tuple[str, ...], f.default)))
        params.append(_option(f.name, option_of(f), _value_type(hints[f.name]), _default(f)))
    return inspect.Signature(params)


def _value_type(hint: Any) -> Any:
    """Optional[X] -> X; tuple[X, ...] -> X (a repeatable flag's one value)."""
    args = [a for a in typing.get_args(hint) if a is not type(None) and a is not Ellipsis]
    return args[0] if args and typing.get_origin(hint) in (tuple, types.UnionType, typing.Union) else hint


def _default(f: Field[Any]) -> object:
    return ... if f.default is MISSING else f.default


def export(**given: Any) -> None:
    from rich.console import Console
    from rich.markup import escape  # paths and messages are the user's text, never rich markup

    # soft_wrap: piped or redirected, a long path stays on its line instead of folding at 80 columns
    err = Console(stderr=True, soft_wrap=True)
    int8 = given.pop("int8")
    given = {k: tuple(v) if isinstance(v, list) else v for k, v in given.items()}  # repeatable flags
    opts = ExportOptions(**{**given, "int8_for": int8_targets(int8, given["int8_for"])})
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
    err.print(f"[green]published[/] {len(report.artifacts)} artifacts to {escape(str(opts.out))}"
              f"{escape(moved_line(opts.out, report.stale))}")


export.__signature__ = _signature()  # type: ignore[attr-defined]
app.command()(cli_boundary(export))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
