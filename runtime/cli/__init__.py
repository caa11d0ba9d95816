"""catdog-runtime SOURCE [--model M], the entry module: it parses the command line into RunOptions
and calls catdog.runtime.run.run(); nothing imports it. Errors are one line on stderr and a
non-zero exit (traceback with --debug); a bad file never stops a folder run, but the exit code says
something failed.

The options are RunOptions' fields, each with its flags, help and range in its metadata
(options.opt). The typer command (app.py) is built from them, and so is a quick parser for plain
command lines (`catdog-runtime photo.jpg --json`): importing typer and click is ~30 ms, a tenth of a
one-photo run. The quick parser takes only what it fully understands and hands everything else
(--help, --opt=value, usage errors) to typer."""

from __future__ import annotations

import sys
from typing import Any

from catdog.runtime.options import RunOptions, option_table, option_types
from catdog.runtime.run import run
from catdog.runtime.scale import LOCAL as LOCAL_RAY  # the package alone: cold start
from catdog.runtime.spine.boundary import failure_exit, stop_on_sigterm


def quick_options(argv: list[str]) -> tuple[RunOptions, bool] | None:
    """(options, --debug) for a plain command line: one SOURCE and RunOptions' flags spelled as
    separate tokens, each at most once, values in range. None for anything else (typer's job)."""
    types, table = option_types(), option_table()
    by_flag = {f: name for name, o in table.items() for f in o.flags}
    arg = next(name for name, o in table.items() if not o.flags)  # SOURCE
    given: dict[str, Any] = {}
    debug, i = False, 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--debug" and not debug:
            debug, i = True, i + 1
            continue
        if not tok.startswith("-") and arg not in given:
            given[arg], i = tok, i + 1
            continue
        name = by_flag.get(tok)
        if name is None or (name in given and not table[name].repeatable):
            return None
        if types[name] is bool:
            given[name], i = True, i + 1
            continue
        if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
            return None
        try:
            value = types[name](argv[i + 1])
        except ValueError:
            return None
        o = table[name]
        if (o.min is not None and value < o.min) or (o.max is not None and value > o.max):
            return None
        given[name], i = (*given.get(name, ()), value) if o.repeatable else value, i + 2
    return (RunOptions(**given), debug) if arg in given else None


def ray_alone(args: list[str]) -> list[str]:
    """`--ray` without an ADDRESS means a local Ray. Options with an optional value exist in neither
    parser, so a bare `--ray` (last, or before another option) becomes `--ray local`, as click reads one."""
    out: list[str] = []
    for i, a in enumerate(args):
        out += [a, LOCAL_RAY] if a == "--ray" and (i + 1 == len(args) or args[i + 1].startswith("-")) else [a]
    return out


def main() -> None:
    argv = ray_alone(sys.argv[1:])
    quick = quick_options(argv)
    if quick is None:
        from catdog.runtime.cli.app import app  # typer: --help, other spellings, usage errors

        app(args=argv)
        return
    opts, debug = quick
    stop_on_sigterm()
    try:
        code = run(opts)
    except (KeyboardInterrupt, Exception) as e:  # noqa: BLE001 - the same boundary as the typer path
        code = failure_exit(e, debug)
    sys.exit(code)


if __name__ == "__main__":
    main()
