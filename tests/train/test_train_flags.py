"""TrainFlags is the one option table of catdog-train [train], probe and cv: every field carries its
flag (and help, or none: typer shows the default) in its metadata, each flag names one field, typer's
defaults are the fields' own, which alias TrainConfig's and TrainOptions' (None: decided later), and
a flag given on the command line counts as given even at its default value (--preset's rule)."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
from typer.testing import CliRunner

import catdog.train.cli as cli
from catdog.runtime.options import OPT, Opt, option_of
from catdog.runtime.spine.errors import ConfigError
from catdog.train.options import RECIPE_FLAGS, RUN_FLAGS, TrainFlags, TrainOptions
from catdog.train.recipe import TrainConfig

LATER = {"data", "epochs", "workers"}  # None on the command line: TrainConfig's, a resumed run's, the CPU's


def test_every_field_has_its_flag():
    for f in dataclasses.fields(TrainFlags):
        o = f.metadata.get(OPT)
        assert isinstance(o, Opt), f"TrainFlags.{f.name}: no opt() metadata"
        assert o.flags and all(flag.startswith("--") for flag in o.flags), f.name
        assert not o.repeatable or f.default == (), f"{f.name}: a repeatable flag fills a tuple"
    flags = [flag for f in dataclasses.fields(TrainFlags) for flag in option_of(f).flags]
    assert len(flags) == len(set(flags)), "a flag names two fields"


def test_each_field_is_the_recipes_or_the_runs():
    names = {f.name for f in dataclasses.fields(TrainFlags)}
    run_fields = {f.name for f in dataclasses.fields(TrainOptions)} - {"recipe", "given"}
    assert set(RUN_FLAGS) == run_fields and RECIPE_FLAGS | set(RUN_FLAGS) == names
    for f in dataclasses.fields(TrainFlags):
        home = TrainConfig if f.name in RECIPE_FLAGS else TrainOptions
        if f.name in LATER:
            assert f.default is None, f.name
        elif f.name != "arch_kwargs":  # a dict in the recipe, KEY=VALUE strings here
            assert f.default == getattr(home, f.name), f"{f.name}: a default of its own; {home.__name__}'s is it"


@pytest.mark.parametrize("command", [cli.default, cli.train, cli.probe, cli.cv])
def test_typers_defaults_are_the_fields_defaults(command):
    params = inspect.signature(command).parameters  # the boundary's (cli_boundary) adds --debug
    assert [p for p in params if p != "debug"] == ["ctx"] + [f.name for f in dataclasses.fields(TrainFlags)]
    for f in dataclasses.fields(TrainFlags):
        assert params[f.name].default.default == f.default, f.name


def _given(monkeypatch, *args: str) -> TrainOptions:
    seen: list[TrainOptions] = []

    def fake_train(opts):
        seen.append(opts)
        raise ConfigError("stop")  # before any work: the options are all this test wants

    monkeypatch.setattr(cli.run, "train", fake_train)
    r = CliRunner().invoke(cli.app, list(args))
    assert len(seen) == 1, r.output
    return seen[0]


def test_a_flag_at_its_default_value_is_given(monkeypatch):
    opts = _given(monkeypatch, "--data", "d", "--out", "o", "--arch", TrainConfig.arch, "--accum", "1",
                  "--val", "v", "--arch-kw", "mode=frozen", "--no-probe")
    assert opts.given == {"data", "arch", "accum_steps", "val", "arch_kwargs", "probe"}
    assert opts.recipe.val == "v" and opts.recipe.arch_kwargs == {"mode": "frozen"} and not opts.recipe.probe
    assert opts.recipe.epochs == TrainConfig.epochs and str(opts.out) == "o"
