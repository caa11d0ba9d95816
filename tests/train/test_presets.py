"""Presets as data: the registry is strict, `catdog-train presets` lists them (table and JSON), and
`--preset NAME` starts train, probe and cv from one while every flag given on the command line wins,
even one given at its default value. The half-width AlexNet the s3 preset names is a real option."""

from __future__ import annotations

import json

import pytest
import torch
from test_cli import main_in_process

from catdog.runtime.spine.errors import CheckpointError, ConfigError
from catdog.train import cli
from catdog.train.models import get_model
from catdog.train.presets import Preset, get_preset, list_presets, register_preset
from catdog.train.recipe import TrainConfig

NAMES = ["s0-alexnet-catdog", "s1-alexnet-cifar10", "s2-resnet18-transfer", "s3-alexnet-flowers", "shipped-lite2-lpft"]


def test_the_registry_is_strict():
    assert [p.name for p in list_presets()] == NAMES
    with pytest.raises(ValueError, match="already registered"):
        register_preset(get_preset("s0-alexnet-catdog"))
    with pytest.raises(ConfigError) as e:
        get_preset("s9")
    assert str(e.value) == f"unknown preset 's9'; known: {', '.join(NAMES)} (catdog-train presets lists them)"
    with pytest.raises(ValueError, match=r"\['lr_typo'\] are not TrainConfig fields"):
        Preset("x", "s9", "", "", "", (("lr_typo", 1.0),))
    with pytest.raises(ConfigError, match="unknown optimizer"):
        Preset("x", "s9", "", "", "", (("optimizer", "rmsprop"),))


def test_the_shipped_recipe_is_reference_model_sh_s():
    c = get_preset("shipped-lite2-lpft").config()
    want = TrainConfig(arch="efficientnet_lite2", pretrained=True, head="probe", freeze_bn=True, ema=0.99,
                       arch_kwargs={"freeze_blocks": 8}, epochs=3, lr=3e-5, scheduler="cosine", seed=0, size=260)
    assert c == want


def stdout_of(args, monkeypatch, capsys) -> str:
    monkeypatch.setattr("sys.argv", ["catdog-train", *args])
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert not e.value.code
    return capsys.readouterr().out


def test_presets_lists_them_as_a_table_and_as_json(monkeypatch, capsys):
    rows = json.loads(stdout_of(["presets", "--json"], monkeypatch, capsys))
    assert [r["name"] for r in rows] == NAMES
    s1 = rows[1]
    assert (s1["model"], s1["size"], s1["optimizer"], s1["lr"], s1["schedule"], s1["epochs"], s1["augment"]) == (
        "alexnet_cifar", 32, "sgd (momentum 0.9), wd 0.0005", 0.01, "step x0.1 every 10 epochs", 30, "seed")
    assert "cifar10:PATH" in s1["data"]
    assert "Krizhevsky" in s1["notes"]["optimizer, lr, momentum, weight_decay, scheduler"]
    assert rows[3]["model"] == "alexnet_s0 width=0.5" and rows[2]["model"] == "resnet18 mode=frozen"
    lines = stdout_of(["presets"], monkeypatch, capsys).splitlines()
    assert lines[0].split(" | ")[:4] == ["name                ", "model                             ", "size",
                                          "augment"]
    assert [ln.split(" | ")[0].strip() for ln in lines[2:7]] == NAMES and all(ln == ln.rstrip() for ln in lines)


@pytest.fixture
def seen(monkeypatch):
    """What train, probe and cv would be run with (nothing trains)."""
    got = {}

    def keep(opts):
        got["opts"] = opts
        return {}

    for name in ("train", "probe", "cv"):
        monkeypatch.setattr(cli.run, name, keep)
    monkeypatch.setattr(cli.run, "cv_lines", lambda report, out: ("", ""))
    return got


def parsed(args, seen, monkeypatch, capsys):
    code, err = main_in_process([*args, "--data", "d", "--out", "o"], monkeypatch, capsys)
    assert code == 0, err
    return seen["opts"]


def test_flags_given_win_over_the_preset(seen, monkeypatch, capsys):
    opts = parsed(["--preset", "s3-alexnet-flowers", "--lr", "0.1", "--arch-kw", "dropout=0.3",
                   "--optimizer", "adam", "--epochs", "10"], seen, monkeypatch, capsys)
    c = opts.recipe
    assert opts.preset == "s3-alexnet-flowers"
    assert (c.arch, c.size, c.momentum, c.weight_decay, c.scheduler, c.step_size, c.probe) == (
        "alexnet_s0", 227, 0.9, 5e-4, "step", 10, False)  # the preset's
    # given: adam is TrainConfig's default, yet typed, so it wins over the preset's sgd
    assert (c.lr, c.optimizer, c.epochs) == (0.1, "adam", 10)
    assert c.arch_kwargs == {"width": 0.5, "dropout": 0.3}  # keys set over the preset's
    assert opts.given == {"lr", "arch_kwargs", "optimizer", "epochs", "data"}


def test_another_arch_drops_the_preset_s_arch_bound_fields(seen, monkeypatch, capsys):
    c = parsed(["train", "--preset", "s3-alexnet-flowers", "--arch", "resnet18"], seen, monkeypatch, capsys).recipe
    assert (c.arch, c.arch_kwargs, c.size, c.optimizer, c.lr) == ("resnet18", {}, None, "sgd", 0.01)
    c = parsed(["--preset", "s1-alexnet-cifar10", "--arch", "alexnet_cifar"], seen, monkeypatch, capsys).recipe
    assert c.size == 32  # its own arch again: nothing dropped


@pytest.mark.parametrize("command", ["probe", "cv"])
def test_probe_and_cv_start_from_a_preset_too(command, seen, monkeypatch, capsys):
    c = parsed([command, "--preset", "s2-resnet18-transfer"], seen, monkeypatch, capsys).recipe
    assert (c.arch, c.arch_kwargs, c.pretrained) == ("resnet18", {"mode": "frozen"}, True)
    if command == "probe":  # probe's own recipe decides over the preset: the probe itself, epoch 0
        assert (c.epochs, c.head) == (0, "probe")


@pytest.mark.parametrize("args, expect", [
    (["--preset", "nope"], "error: unknown preset 'nope'; known: s0-alexnet-catdog, "),
    (["--preset", "s1-alexnet-cifar10", "--resume", "r"], "error: --preset starts a new run; --resume RUN_DIR"),
])
def test_preset_errors_are_one_line(args, expect, seen, monkeypatch, capsys):
    code, err = main_in_process([*args, "--data", "d"], monkeypatch, capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith(expect), err


def test_the_half_width_alexnet():
    full, half = get_model("alexnet_s0", 5), get_model("alexnet_s0", 5, width=0.5)
    assert [m.out_channels for m in half.features if isinstance(m, torch.nn.Conv2d)] == [32, 96, 192, 128, 128]
    assert half.classifier[1].in_features == 128 * 36 and half.classifier[6].in_features == 2048
    assert half(torch.zeros(1, 3, 227, 227)).shape == (1, 5)
    ratio = sum(p.numel() for p in full.parameters()) / sum(p.numel() for p in half.parameters())
    assert 3.9 < ratio < 4.1
    from torchvision.models import AlexNet

    assert type(full) is AlexNet  # width 1 is torchvision's own, as before
    small = get_model("alexnet_cifar", 10, width=0.25)
    assert small.classifier[1].out_features == 1024 and small(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(CheckpointError, match="ImageNet weights exist at width 1 only"):
        get_model("alexnet_s0", 2, width=0.5, pretrained=True)
    with pytest.raises(CheckpointError, match="width is a channel multiplier"):
        get_model("alexnet_cifar", 2, width=0)
