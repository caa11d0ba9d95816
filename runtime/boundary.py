"""The one CLI error boundary, shared by catdog-train, catdog-export, catdog-runtime and catdog-bench.

`@cli_boundary` on a typer command adds its `--debug` option and turns what escapes the command
into what a user should see: a CatdogError is its one line on stderr and its exit code; Ctrl-C is
"interrupted" and exit 130, SIGTERM the same path (raised as Terminated, a KeyboardInterrupt) and
exit 143 (commands with more to say about an interrupt catch it themselves); any
other exception is a bug or a library failure, still one line (naming --debug) and exit 1. With
--debug the traceback is shown instead. A group's root `--debug` (catdog-bench --debug run) counts too.
"""

from __future__ import annotations

import functools
import sys
import traceback
from typing import Any, Callable, TypeVar

from catdog.runtime.errors import CatdogError, error_line

EXIT_BUG = 1
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, what a shell reports for a process SIGTERM stopped
F = TypeVar("F", bound=Callable[..., Any])


class Terminated(KeyboardInterrupt):
    """SIGTERM (systemd, docker stop, Kubernetes), raised as a KeyboardInterrupt: every path that
    stops cleanly on Ctrl-C (the CSV written, the video finalised, nothing half-published) then
    does the same for it, with no second code path to drift."""

    reason = "SIGTERM"


def _on_sigterm(signum: int, frame: Any) -> None:
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
    raise Terminated()


def stop_on_sigterm() -> None:
    """Make SIGTERM stop the command as Ctrl-C does. Main thread only (Python's rule for signals);
    a SIGTERM the parent set to be ignored stays ignored."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)


def interrupt_exit(exc: KeyboardInterrupt) -> int:
    return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED


def interrupt_reason(exc: KeyboardInterrupt) -> str:
    return getattr(exc, "reason", "Ctrl-C")


def interrupted_word(exc: KeyboardInterrupt) -> str:
    """How a stop is said: 'interrupted' (Ctrl-C) or 'terminated (SIGTERM)'."""
    return "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"


def say(msg: str) -> None:
    """One line on stderr, flushed (the only way the boundary talks)."""
    print(msg, file=sys.stderr, flush=True)


def failure_exit(exc: BaseException, debug: bool) -> int:
    """What escaped a command, said as the user should see it; returns the exit code. Typer-free:
    catdog-runtime's one-photo path uses it without loading typer or click."""
    if isinstance(exc, KeyboardInterrupt):
        say(interrupted_word(exc))
        return interrupt_exit(exc)
    if debug:
        traceback.print_exception(exc)
    if isinstance(exc, CatdogError):
        say(f"error: {exc}")
        return exc.exit_code
    if not debug:
        say(f"internal error: {type(exc).__name__}: {error_line(exc)} (rerun with --debug for the traceback)")
    return EXIT_BUG


def cli_boundary(fn: F) -> F:
    """Wrap a typer command: adds `--debug` to its signature and maps escaping errors to exits."""
    import inspect

    import click
    import typer

    sig = inspect.signature(fn)
    debug_param = inspect.Parameter("debug", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                                    default=typer.Option(False, "--debug", help="Show tracebacks."))

    @functools.wraps(fn)
    def wrapper(*args: Any, debug: bool = False, **kwargs: Any) -> Any:
        ctx = click.get_current_context(silent=True)
        debug = debug or bool(ctx and ctx.find_root().params.get("debug"))  # catdog-bench --debug run
        stop_on_sigterm()
        try:
            return fn(*args, **kwargs)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise  # typer.Exit(code) and usage errors already say what they mean
        except (KeyboardInterrupt, Exception) as e:  # noqa: BLE001 - the boundary: a bug still gets one line
            raise typer.Exit(failure_exit(e, debug)) from None

    params = [p for p in sig.parameters.values() if p.name != "debug"]
    wrapper.__signature__ = sig.replace(parameters=[*params, debug_param])  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
