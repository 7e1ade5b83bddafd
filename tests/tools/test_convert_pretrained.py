"""The starting-weight converters, end to end without downloads.

A publisher's model (timm's Swin, torchvision's ResNet) is built with random weights, saved as its
publisher does and converted by the tool script with its command line (``tools/<script> IN OUT``,
run in this process; ``test_official_command_line`` runs one in a fresh interpreter). The file is
loaded through the training path (the recipe's ``MODEL.WEIGHTS`` into the full model with
``DetectionCheckpointer``); the backbone must then load every key and give the source model's own
stage features on a real photo, each side normalised with its own convention (the recipe's
``PIXEL_MEAN``/``PIXEL_STD`` on 0-255 RGB; the publisher's mean/std on 0-1 RGB).
"""

import functools
import logging
import math
import os
import pickle
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model
from PIL import Image
from torch import Tensor, nn

import mask2former  # noqa: F401  (registers the model)
from mask2former.checkpoint import (
    ConversionError,
    convert_swin_state_dict,
    convert_torchvision_resnet_state_dict,
)
from mask2former.engine import build_config

REPO = Path(__file__).resolve().parents[2]
PHOTO = REPO / "tests/data/samples/coco_panoptic/images/000000142238.jpg"
RECIPES = REPO / "configs"
COCO_PANOPTIC = "coco/panoptic-segmentation/"
FEATURES = ("res2", "res3", "res4", "res5")
# Weight initialisers skipped while building the full Mask2Former: every backbone weight is then
# loaded from the converted file, and the head's values do not matter here.
_INITIALISERS = ("trunc_normal_", "normal_", "uniform_", "xavier_uniform_", "kaiming_uniform_")


class RecordingCheckpointer(DetectionCheckpointer):
    """Keeps the incompatible keys that ``load`` only logs."""

    def _load_model(self, checkpoint):
        self.incompatible = super()._load_model(checkpoint)
        return self.incompatible


def run_tool(script: str, *args: object) -> int:
    """Runs ``python tools/<script> ARGS`` in this process; returns its exit code."""
    argv = [str(REPO / "tools" / script), *map(str, args)]
    saved = sys.argv
    sys.argv = argv
    try:
        runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as e:
        return int(e.code or 0)
    finally:
        sys.argv = saved
    return 0


def photo(height: int, width: int) -> Tensor:
    """The COCO photo resized to height x width: uint8 RGB [3, H, W]."""
    image = Image.open(PHOTO).convert("RGB").resize((width, height), Image.BILINEAR)
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)  # 3, H, W


def publisher_input(image: Tensor, mean: Tuple[float, ...], std: Tuple[float, ...]) -> Tensor:
    """torchvision/timm convention: RGB in [0, 1], normalised per channel -> [1, 3, H, W]."""
    x = image.float() / 255.0
    return ((x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None])[None]


def randomise_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random values in every parameter and BatchNorm statistic, so that a swapped or misplaced
    tensor changes the features (the default initialisers leave biases at 0 and norms at 1)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if p.dim() == 1 and name.endswith("weight"):  # norm scales around 1
                p.copy_(1.0 + 0.2 * noise)
            elif p.dim() == 1:
                p.copy_(0.1 * noise)
            else:
                p.add_(0.01 * noise)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=gen))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=gen))
    return model.eval()


def load_recipe(
    recipe: str, weights: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> nn.Module:
    """The recipe's full model with ``MODEL.WEIGHTS`` = weights, loaded as training does; asserts
    that no backbone key is missing and no key of the file is unused."""
    cfg = build_config(
        str(RECIPES / recipe), ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", str(weights)]
    )
    assert cfg.INPUT.FORMAT == "RGB"
    with monkeypatch.context() as patch:
        for name in _INITIALISERS:
            patch.setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)
        model = build_model(cfg).eval()
    checkpointer = RecordingCheckpointer(model)
    with caplog.at_level(logging.WARNING, logger="detectron2.checkpoint.c2_model_loading"):
        checkpointer.load(cfg.MODEL.WEIGHTS)
    # the matching heuristics skip (with a warning) a file key matched to a model key of another
    # shape, e.g. an unprefixed `norm1.weight` matched to the pixel decoder's `*.norm1.weight`
    assert "will not be loaded" not in caplog.text
    incompatible = checkpointer.incompatible
    assert [k for k in incompatible.missing_keys if k.startswith("backbone.")] == []
    assert incompatible.unexpected_keys == []
    assert incompatible.incorrect_shapes == []
    return model


def backbone_features(model: nn.Module, image: Tensor) -> Dict[str, Tensor]:
    """Our backbone on a 0-255 image, normalised by the model (``PIXEL_MEAN``/``PIXEL_STD``)."""
    x = (image.float() - model.pixel_mean) / model.pixel_std  # 3, H, W
    with torch.no_grad():
        return model.backbone(x[None])


def max_difference(ours: Dict[str, Tensor], reference: List[Tensor]) -> float:
    """Largest |ours - reference| over the four stages, relative to the largest |reference|."""
    worst = 0.0
    for name, ref in zip(FEATURES, reference):
        assert ours[name].shape == ref.shape, name
        assert torch.isfinite(ref).all(), name
        if not torch.isfinite(ours[name]).all():
            return math.inf
        worst = max(worst, ((ours[name] - ref).abs().max() / ref.abs().max()).item())
    return worst


# ---------------------------------------------------------------------------------------------
# Swin: timm's model is the source; its state dict is published in timm's layout
# (model.safetensors) or in the Swin authors' ({"model": ...} .pth with the index/mask buffers).


def swin_authors_layout(model: nn.Module) -> Dict[str, Dict[str, Tensor]]:
    """timm's Swin as the Swin authors publish it: patch merging at the end of the previous stage,
    classifier ``head``, and the ``relative_position_index``/``attn_mask`` buffers (timm's own)."""
    num_stages = len(model.layers)
    state = {}
    for key, value in model.state_dict().items():
        for i in range(1, num_stages):
            key = key.replace(f"layers.{i}.downsample.", f"layers.{i - 1}.downsample.")
        state[key.replace("head.fc.", "head.")] = value
    for key, value in model.named_buffers():
        if key.endswith(("relative_position_index", "attn_mask")) and value is not None:
            state[key] = value
    return {"model": state}


def save_as_publisher(model: nn.Module, publisher: str, folder: Path) -> Path:
    if publisher == "timm":
        from safetensors.torch import save_file

        path = folder / "model.safetensors"
        save_file(model.state_dict(), str(path))
    else:
        path = folder / "swin_authors.pth"
        torch.save(swin_authors_layout(model), path)
    return path


def timm_swin_features(model: nn.Module, image: Tensor) -> List[Tensor]:
    """timm's stage outputs with the per-stage LayerNorm of the detection backbone (no affine:
    the converter writes ``norm0..3`` at their initial value)."""
    cfg = timm.data.resolve_data_config({}, model=model)
    with torch.no_grad():
        stages = model.forward_intermediates(
            publisher_input(image, cfg["mean"], cfg["std"]), intermediates_only=True
        )
    return [F.layer_norm(s.permute(0, 2, 3, 1), s.shape[1:2]).permute(0, 3, 1, 2) for s in stages]


# (recipe, input size): every stage of the input is a multiple of the window, so that timm's
# padding (after the cyclic shift) and the detection backbone's (before it) are both no-ops; the
# 224x448 Swin-T input is not square, so that a transposed map would show.
SWINS = {
    "swin_tiny_patch4_window7_224": (
        COCO_PANOPTIC + "swin/maskformer2_swin_tiny_bs16_50ep.yaml",
        (224, 448),
    ),
    "swin_base_patch4_window12_384": (
        COCO_PANOPTIC + "swin/maskformer2_swin_base_384_bs16_50ep.yaml",
        (384, 384),
    ),
}


@functools.cache
def swin_source(name: str) -> Tuple[nn.Module, List[Tensor]]:
    """timm's Swin with random weights and its reference features on the photo.

    ``always_partition=True`` is timm's switch for the detection behaviour at stages no larger
    than the window (the classification forward shrinks the window there instead); it changes no
    weight, only the forward.
    """
    size = SWINS[name][1]
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, img_size=size, always_partition=True)
    model = randomise_(model)
    return model, timm_swin_features(model, photo(*size))


def convert_swin(name: str, publisher: str, folder: Path) -> Path:
    checkpoint = save_as_publisher(swin_source(name)[0], publisher, folder)
    out = folder / f"{name}.pkl"
    assert run_tool("convert-pretrained-swin-model-to-d2.py", checkpoint, out) == 0
    return out


@pytest.mark.parametrize(
    "name, publisher",
    [
        ("swin_tiny_patch4_window7_224", "timm"),
        ("swin_tiny_patch4_window7_224", "swin"),
        pytest.param("swin_base_patch4_window12_384", "swin", marks=pytest.mark.slow),
    ],
)
def test_swin_converter_gives_the_source_features(
    name: str,
    publisher: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    converted = convert_swin(name, publisher, tmp_path)
    with open(converted, "rb") as f:
        data = pickle.load(f)
    assert data["matching_heuristics"] is True and data["__author__"].startswith(
        "timm" if publisher == "timm" else "Swin Transformer authors"
    )
    recipe, size = SWINS[name]
    model = load_recipe(recipe, converted, monkeypatch, caplog)
    difference = max_difference(backbone_features(model, photo(*size)), swin_source(name)[1])
    print(f"{name} ({publisher} layout): max relative feature difference {difference:.1e}")
    assert difference < 1e-4


@pytest.mark.parametrize(
    "name",
    [
        "swin_tiny_patch4_window7_224",
        pytest.param("swin_base_patch4_window12_384", marks=pytest.mark.slow),
    ],
)
def test_swin_layouts_convert_to_the_same_file(name: str) -> None:
    source = swin_source(name)[0]
    from_timm, timm_layout = convert_swin_state_dict(source.state_dict())
    from_authors, authors_layout = convert_swin_state_dict(swin_authors_layout(source)["model"])
    assert (timm_layout, authors_layout) == ("timm", "swin")
    assert sorted(from_timm) == sorted(from_authors)
    for key, value in from_timm.items():
        assert torch.equal(value, from_authors[key]), key


# ---------------------------------------------------------------------------------------------
# ResNet: torchvision's model is the source, its state dict saved as torchvision publishes it.

RESNETS = {
    "resnet50": (
        COCO_PANOPTIC + "maskformer2_R50_bs16_50ep.yaml",
        torchvision.models.ResNet50_Weights,
    ),
    "resnet101": (
        COCO_PANOPTIC + "maskformer2_R101_bs16_50ep.yaml",
        torchvision.models.ResNet101_Weights,
    ),
}
# The Cityscapes and ADE20K R50/R101 recipes train the backbone with SyncBN instead of FrozenBN.
SYNC_BN_R50 = "cityscapes/panoptic-segmentation/maskformer2_R50_bs16_90k.yaml"
RESNET_INPUT = (320, 448)


def torchvision_features(model: nn.Module, image: Tensor, weights_enum) -> List[Tensor]:
    """Stage outputs layer1..layer4, on the input normalised as the published weights expect."""
    transform = weights_enum.IMAGENET1K_V1.transforms()  # the publisher's mean/std
    x = publisher_input(image, tuple(transform.mean), tuple(transform.std))
    outputs = []
    with torch.no_grad():
        x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
            x = layer(x)
            outputs.append(x)
    return outputs


@functools.cache
def resnet_source(name: str) -> Tuple[nn.Module, List[Tensor]]:
    """torchvision's ResNet with random weights and statistics, and its features on the photo."""
    torch.manual_seed(0)
    model = randomise_(getattr(torchvision.models, name)(weights=None))
    return model, torchvision_features(model, photo(*RESNET_INPUT), RESNETS[name][1])


def convert_resnet(name: str, folder: Path) -> Path:
    checkpoint = folder / f"{name}.pth"
    torch.save(resnet_source(name)[0].state_dict(), checkpoint)  # as download.pytorch.org has it
    out = folder / f"R-{name[len('resnet') :]}.pkl"
    assert run_tool("convert-torchvision-to-d2.py", checkpoint, out) == 0
    return out


@pytest.mark.parametrize(
    "name, recipe",
    [
        ("resnet50", RESNETS["resnet50"][0]),
        ("resnet50", SYNC_BN_R50),
        pytest.param("resnet101", RESNETS["resnet101"][0], marks=pytest.mark.slow),
    ],
)
def test_torchvision_converter_gives_the_source_features(
    name: str,
    recipe: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    converted = convert_resnet(name, tmp_path)
    with open(converted, "rb") as f:
        data = pickle.load(f)
    assert data["__author__"] == "torchvision" and data["matching_heuristics"] is True
    assert all(isinstance(v, np.ndarray) for v in data["model"].values())
    model = load_recipe(recipe, converted, monkeypatch, caplog)
    features = backbone_features(model, photo(*RESNET_INPUT))
    difference = max_difference(features, resnet_source(name)[1])
    print(f"{name} ({recipe}): max relative feature difference {difference:.1e}")
    assert difference < 1e-4


def test_official_command_line(tmp_path: Path) -> None:
    """``python tools/convert-torchvision-to-d2.py IN.pth OUT.pkl`` in a fresh interpreter."""
    checkpoint = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), checkpoint)
    out = tmp_path / "R-18.pkl"
    result = subprocess.run(
        [sys.executable, "tools/convert-torchvision-to-d2.py", str(checkpoint), str(out)],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    with open(out, "rb") as f:
        data = pickle.load(f)
    assert "res5.1.conv2.norm.running_var" in data["model"]
    assert not any("fc." in k or "num_batches_tracked" in k for k in data["model"])


# ---------------------------------------------------------------------------------------------
# The comparison catches a wrong conversion: one misplaced tensor in the file changes the features.


def _transpose(state: Dict[str, np.ndarray], key: str) -> None:
    state[key] = np.ascontiguousarray(state[key].T)


def _swap(state: Dict[str, np.ndarray], a: str, b: str) -> None:
    state[a], state[b] = state[b], state[a]


CORRUPTIONS: Dict[str, Callable[[Dict[str, np.ndarray]], None]] = {
    "swin-transposed-proj": lambda s: _transpose(s, "layers.1.blocks.0.attn.proj.weight"),
    "resnet-swapped-bn-affine": lambda s: _swap(
        s, "res3.0.conv2.norm.weight", "res3.0.conv2.norm.bias"
    ),
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_a_wrong_conversion_changes_the_features(
    corruption: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if corruption.startswith("swin"):
        name = "swin_tiny_patch4_window7_224"
        converted = convert_swin(name, "timm", tmp_path)
        (recipe, size), reference = SWINS[name], swin_source(name)[1]
    else:
        converted = convert_resnet("resnet50", tmp_path)
        recipe, size, reference = RESNETS["resnet50"][0], RESNET_INPUT, resnet_source("resnet50")[1]
    with open(converted, "rb") as f:
        data = pickle.load(f)
    CORRUPTIONS[corruption](data["model"])
    with open(converted, "wb") as f:
        pickle.dump(data, f)
    model = load_recipe(
        recipe, converted, monkeypatch, caplog
    )  # still loads: names and shapes are right
    assert max_difference(backbone_features(model, photo(*size)), reference) > 1e-2


# ---------------------------------------------------------------------------------------------
# Bad input gets an error naming the file and the key.


def test_converters_reject_the_other_architecture(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    resnet = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), resnet)
    assert run_tool("convert-pretrained-swin-model-to-d2.py", resnet, tmp_path / "out.pkl") == 1
    assert str(resnet) in caplog.text and "not a Swin Transformer" in caplog.text
    assert not (tmp_path / "out.pkl").exists()

    swin = swin_source("swin_tiny_patch4_window7_224")[0].state_dict()
    with pytest.raises(ConversionError, match="'patch_embed.proj.weight' is not a torchvision"):
        convert_torchvision_resnet_state_dict(swin)


def test_converter_refuses_pickled_objects_unless_trusted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path / "with_config.pth"
    torch.save({"model": state, "config": Path("not/a/tensor")}, path)  # a pickled object
    assert run_tool("convert-torchvision-to-d2.py", path, tmp_path / "out.pkl") == 1
    assert str(path) in caplog.text and "--trust-pickle" in caplog.text
    assert (
        run_tool("convert-torchvision-to-d2.py", path, tmp_path / "out.pkl", "--trust-pickle") == 0
    )
    with open(tmp_path / "out.pkl", "rb") as f:
        assert "res5.1.conv2.norm.running_var" in pickle.load(f)["model"]
