"""The one CLI error boundary, shared by catdog-train, catdog-export, catdog-runtime and catdog-bench.

`@cli_boundary` on a typer command adds its `--debug` option and turns what escapes the command
into what a user should see: a CatdogError is its one line on stderr and its exit code; Ctrl-C is
"interrupted" and exit 130, SIGTERM the same path (raised as Terminated, a KeyboardInterrupt) and
exit 143 (commands with more to say about an interrupt catch it themselves); any
other exception is a bug or a library failure, still one line (naming --debug) and exit 1. With
--debug the traceback is shown instead. A group's root `--debug` (catdog-bench --debug run) counts too.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import traceback
from typing import Any, Callable, Iterator, TypeVar

from catdog.runtime.spine.errors import CatdogError, error_line

EXIT_BUG = 1
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, what a shell reports for a process SIGTERM stopped
F = TypeVar("F", bound=Callable[..., Any])


class Terminated(KeyboardInterrupt):
    """SIGTERM (systemd, docker stop, Kubernetes), raised as a KeyboardInterrupt: every path that
    stops cleanly on Ctrl-C (the CSV written, the video finalised, nothing half-published) then
    does the same for it, with no second code path to drift."""

    reason = "SIGTERM"


_deferring = False  # inside signals_deferred(): a stop is held until the block ends
_held: KeyboardInterrupt | None = None


def _stop(exc: KeyboardInterrupt) -> None:
    global _held
    if _deferring:
        _held = _held or exc
        return
    raise exc


def _on_sigint(signum: int, frame: Any) -> None:
    _stop(KeyboardInterrupt())


def _on_sigterm(signum: int, frame: Any) -> None:
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
    _stop(Terminated())


def stop_on_sigterm() -> None:
    """Make SIGTERM stop the command as Ctrl-C does, and both wait out a signals_deferred() block.
    Main thread only (Python's rule for signals); a signal the parent set to be ignored (SIGINT of
    a background job) stays ignored."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_sigint)


def is_stop_handler(handler: Any) -> bool:
    """Python's own SIGINT handler or one of ours: a handler a command may replace with its own."""
    import signal

    return handler in (signal.default_int_handler, _on_sigint, _on_sigterm)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Within: a Ctrl-C or SIGTERM is held and raised when the block ends, so one result reaches
    every output or none (the CSV never misses a line that --json printed, nor the saved video a
    frame). Held in Python, not by a signal mask: the OS may hand the signal to any thread."""
    global _deferring, _held
    if _deferring:
        yield
        return
    _deferring = True
    try:
        yield
    finally:
        _deferring = False
        held, _held = _held, None
        if held is not None:
            raise held


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
