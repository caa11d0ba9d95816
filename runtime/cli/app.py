"""The typer face of catdog-runtime: --help, every spelling click accepts, usage errors. Built from
RunOptions' fields (each default, flag, help and range written once, there), so it and the quick
parser can never disagree on a name, a default or a range. Loaded only when the quick parser hands
a command line over (see cli/__init__.py)."""

from __future__ import annotations

import inspect
from dataclasses import fields
from typing import Any, Optional, cast

import typer

from catdog.runtime.options import RunOptions, option_of, option_types
from catdog.runtime.run import run
from catdog.runtime.spine.boundary import cli_boundary

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                  help="Classify images, folders, videos, cameras and streams with an ONNX model (no torch).")


def _signature() -> inspect.Signature:
    """One parameter per RunOptions field: the one without flags is the argument (SOURCE)."""
    types, params = option_types(), []
    for f in fields(RunOptions):
        o, t, default = option_of(f), types[f.name], cast(Any, f.default)
        if not o.flags:
            params.append(inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Optional[t],
                                            default=typer.Argument(default, help=o.help)))
            continue
        kind = list[t] if o.repeatable else t  # type: ignore[valid-type]
        params.append(inspect.Parameter(
            f.name, inspect.Parameter.KEYWORD_ONLY, annotation=t if t is bool else Optional[kind],
            default=typer.Option(default, *o.flags, help=o.help, min=o.min, max=o.max)))
    return inspect.Signature(params)


def main_command(**given: Any) -> None:
    given = {k: tuple(v) if isinstance(v, list) else v for k, v in given.items()}  # repeatable flags
    raise typer.Exit(run(RunOptions(**given)))


main_command.__signature__ = _signature()  # type: ignore[attr-defined]
app.command(name="catdog-runtime")(cli_boundary(main_command))
