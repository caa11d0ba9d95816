"""ExportOptions is catdog-export's one option table: every field carries its flag and help in its
metadata, each flag names one field, each default is written once (typer's are the fields' own),
and the ranges in the metadata are the ones the pipeline enforces. Torch-free and fast."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from typer.testing import CliRunner

import catdog.export.cli as cli
from catdog.export.options import INT8_CPU, ExportOptions
from catdog.runtime.options import OPT, Opt, option_of
from catdog.runtime.spine.errors import InputError


def test_every_field_has_its_flag_and_help():
    for f in dataclasses.fields(ExportOptions):
        o = f.metadata.get(OPT)
        assert isinstance(o, Opt), f"ExportOptions.{f.name}: no opt() metadata"
        assert o.help.strip(), f.name
        assert o.flags and all(flag.startswith("--") for flag in o.flags), f"{f.name}: catdog-export has no argument"
        assert not o.repeatable or f.default == (), f"{f.name}: a repeatable flag fills a tuple"
    flags = [flag for f in dataclasses.fields(ExportOptions) for flag in option_of(f).flags] + list(INT8_CPU.flags)
    assert len(flags) == len(set(flags)), "a flag names two fields"


def test_typers_defaults_are_the_fields_defaults():
    params = cli.export.__signature__.parameters  # type: ignore[attr-defined]
    names = [f.name for f in dataclasses.fields(ExportOptions)]
    assert list(params) == names[:2] + ["int8"] + names[2:]  # --int8 just before --int8-for
    for f in dataclasses.fields(ExportOptions):
        want = ... if f.default is dataclasses.MISSING else f.default
        assert params[f.name].default.default == want, f.name
    assert params["int8"].default.default is False


def _given(monkeypatch, *args: str) -> ExportOptions:
    seen: list[ExportOptions] = []

    def fake_run_export(opts, progress=None):
        seen.append(opts)
        raise InputError("stop")  # before any work: the options are all this test wants

    monkeypatch.setattr("catdog.export.pipeline.run_export", fake_run_export)
    r = CliRunner().invoke(cli.app, list(args))
    assert len(seen) == 1, r.output
    return seen[0]


def test_a_bare_command_line_gives_the_default_options(monkeypatch):
    opts = _given(monkeypatch, "--ckpt", "best.pth", "--out", "o")
    assert opts == ExportOptions(ckpt=Path("best.pth"), out=Path("o"))


def test_each_flag_reaches_its_field(monkeypatch):
    opts = _given(monkeypatch, "--ckpt", "b.pth", "--out", "o", "--int8-for", "tensorrt", "--int8", "--gate", "a=1",
                  "--gate", "b=2", "--parity", "p1", "--parity", "p2", "--bake-preprocess", "--no-int8-select",
                  "--calib-count", "3", "--calib-method", "entropy")
    assert opts.int8_for == ("cpu", "tensorrt")  # --int8 first, as int8_targets orders them
    assert opts.gates == ("a=1", "b=2") and opts.parity == (Path("p1"), Path("p2"))
    assert opts.bake and not opts.int8_select and opts.calib_count == 3 and opts.calib_method == "entropy"


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(ExportOptions)
                                  if option_of(f).min is not None or option_of(f).max is not None])
def test_the_metadatas_ranges_are_the_pipelines(name, tmp_path):
    from catdog.export.pipeline import _validate  # torch: only this test loads the pipeline

    o = option_of(next(f for f in dataclasses.fields(ExportOptions) if f.name == name))
    bad = int(o.min) - 1 if o.min is not None else int(o.max or 0) + 1
    opts = ExportOptions(ckpt=tmp_path / "best.pth", out=tmp_path / "out", parity=(tmp_path,), **{name: bad})
    with pytest.raises(InputError, match=f"^{o.flags[0]} must be at "):
        _validate(opts)
