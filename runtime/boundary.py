"""The one CLI error boundary, shared by catdog-train, catdog-export, catdog-runtime and catdog-bench.

`@cli_boundary` on a typer command adds its `--debug` option and turns what escapes the command
into what a user should see: a CatdogError is its one line on stderr and its exit code; Ctrl-C is
"interrupted" and exit 130 (commands with more to say about an interrupt catch it themselves); any
other exception is a bug or a library failure, still one line (naming --debug) and exit 1. With
--debug the traceback is shown instead. A group's root `--debug` (catdog-bench --debug run) counts too.
"""

from __future__ import annotations

import functools
import inspect
import sys
import traceback
from typing import Any, Callable, TypeVar

import click
import typer

from catdog.runtime.errors import CatdogError, error_line

EXIT_BUG = 1
EXIT_INTERRUPTED = 130
F = TypeVar("F", bound=Callable[..., Any])


def say(msg: str) -> None:
    """One line on stderr, flushed (the only way the boundary talks)."""
    print(msg, file=sys.stderr, flush=True)


def _root_debug() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.find_root().params.get("debug"))


def cli_boundary(fn: F) -> F:
    """Wrap a typer command: adds `--debug` to its signature and maps escaping errors to exits."""
    sig = inspect.signature(fn)
    debug_param = inspect.Parameter("debug", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                                    default=typer.Option(False, "--debug", help="Show tracebacks."))

    @functools.wraps(fn)
    def wrapper(*args: Any, debug: bool = False, **kwargs: Any) -> Any:
        debug = debug or _root_debug()
        try:
            return fn(*args, **kwargs)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise  # typer.Exit(code) and usage errors already say what they mean
        except CatdogError as e:
            if debug:
                traceback.print_exc()
            say(f"error: {e}")
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            say("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as e:  # noqa: BLE001 - the boundary: a bug still gets one line, not a traceback
            if debug:
                traceback.print_exc()
            else:
                say(f"internal error: {type(e).__name__}: {error_line(e)} (rerun with --debug for the traceback)")
            raise typer.Exit(EXIT_BUG) from None

    params = [p for p in sig.parameters.values() if p.name != "debug"]
    wrapper.__signature__ = sig.replace(parameters=[*params, debug_param])  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
