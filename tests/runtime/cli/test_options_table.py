"""RunOptions is the one option table: every field carries its flags and help in its metadata, each
flag names one field, and each default is written once (typer's defaults are the fields' own, and
the rooms below run.py take option dataclasses without defaults of their own)."""

from __future__ import annotations

import dataclasses

from typer.testing import CliRunner

import catdog.runtime.cli.app as cli_app
from catdog.runtime.options import OPT, Opt, RunOptions, option_table


def test_every_field_has_its_flags_and_help():
    for f in dataclasses.fields(RunOptions):
        o = f.metadata.get(OPT)
        assert isinstance(o, Opt), f"RunOptions.{f.name}: no opt() metadata"
        assert o.help.strip(), f.name
        assert all(flag.startswith("-") for flag in o.flags), f.name
        assert o.flags or f.name == "source", f"{f.name}: no flag (only SOURCE is positional)"
        assert not o.repeatable or f.default == (), f"{f.name}: a repeatable flag fills a tuple"
    flags = [flag for o in option_table().values() for flag in o.flags]
    assert len(flags) == len(set(flags)), "a flag names two fields"


def test_typers_defaults_are_the_fields_defaults():
    params = cli_app.main_command.__signature__.parameters  # type: ignore[attr-defined]
    assert list(params) == [f.name for f in dataclasses.fields(RunOptions)]
    for f in dataclasses.fields(RunOptions):
        assert params[f.name].default.default == f.default, f.name


def test_a_bare_command_line_gives_the_default_options(monkeypatch):
    seen: list[RunOptions] = []
    monkeypatch.setattr(cli_app, "run", lambda o: seen.append(o) or 0)
    r = CliRunner().invoke(cli_app.app, ["photo.jpg"])
    assert r.exit_code == 0, r.output
    assert seen == [RunOptions(source="photo.jpg")]


def test_below_run_no_option_default_is_written_again():
    from catdog.runtime.scale.options import ScaleOptions
    from catdog.runtime.serve.options import ServeOptions

    for cls in (ScaleOptions, ServeOptions):
        given = [f.name for f in dataclasses.fields(cls)
                 if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING]
        assert not given, f"{cls.__name__}: {given} have defaults of their own; RunOptions' are the ones"
