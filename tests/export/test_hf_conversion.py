"""Conversion to and from transformers' Mask2FormerForUniversalSegmentation: the converted model's
class and mask logits equal ours on a real photo, both ways; the tools write directories that
``from_pretrained`` loads strictly; unsupported configs fail with the key at fault."""

import json
import sys
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="the hf extra (pip install -e .[hf])")

from detectron2.data import MetadataCatalog  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from export_samples import CONFIGS, REPO, normalized, photo, randomized_model, tiny_cfg  # noqa: E402

from mask2former.hf import UnsupportedConfigError, check_convertible  # noqa: E402
from mask2former.hf.convert import from_hf, query_logits, to_hf  # noqa: E402

sys.path.insert(0, str(REPO / "tools"))
import convert_from_hf  # noqa: E402
import convert_to_hf  # noqa: E402

sys.path.remove(str(REPO / "tools"))

TOL = 1e-4
# 320x448: every Swin stage is wider than the 7x7 window (HF and ours pad windows alike anyway).
SIZE = (320, 448)


def _max_diff(a, b) -> float:
    return max(float((p - q).abs().max()) for p, q in zip(a, b))


@pytest.mark.parametrize("kind", ["swin", "r50"])
def test_ours_to_hf_and_back_give_the_same_logits(tmp_path: Path, checkpoint_factory, kind) -> None:
    weights = checkpoint_factory(kind)
    out_dir = tmp_path / "hf"
    convert_to_hf.main(
        ["--config-file", str(CONFIGS[kind]), "--weights", str(weights), "--output", str(out_dir)]
    )
    config = json.loads((out_dir / "config.json").read_text())
    assert config["id2label"]["0"] == "person" and len(config["id2label"]) == 133
    hf_model, info = transformers.Mask2FormerForUniversalSegmentation.from_pretrained(
        out_dir, output_loading_info=True
    )
    assert all(not v for v in info.values()), info  # no missing / unexpected / mismatched keys
    hf_model.eval()
    ours = randomized_model(tiny_cfg(kind))
    x = normalized(ours, photo(0, SIZE))
    expected = query_logits(ours, x)
    assert _max_diff(expected, query_logits(hf_model, x)) <= TOL

    # ... and back: checkpoint + YAML that our tools load.
    pth, yaml = tmp_path / "back.pth", tmp_path / "back.yaml"
    convert_from_hf.main(
        ["--input", str(out_dir), "--output", str(pth), "--config-output", str(yaml)]
    )
    from mask2former.engine import build_config
    from mask2former.hf.convert import load_weights

    cfg = build_config(str(yaml), ["MODEL.DEVICE", "cpu"])
    back = build_model(cfg).eval()
    back.load_state_dict(load_weights(cfg, cfg.MODEL.WEIGHTS))
    assert _max_diff(expected, query_logits(back, x)) <= TOL


@pytest.mark.parametrize("kind", ["swin", "r50"])
def test_hf_random_model_to_ours_gives_the_same_logits(kind) -> None:
    """A model initialised by transformers (its own init), converted to ours."""
    template = to_hf(tiny_cfg(kind), build_model(tiny_cfg(kind)).state_dict(), ["c"] * 133)
    torch.manual_seed(1)
    hf_model = transformers.Mask2FormerForUniversalSegmentation(template.config).eval()
    with torch.no_grad():
        for p in hf_model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    cfg, state = from_hf(hf_model)
    ours = build_model(cfg).eval()
    ours.load_state_dict(state, strict=True)
    x = normalized(ours, photo(1, SIZE))
    assert _max_diff(query_logits(hf_model, x), query_logits(ours, x)) <= TOL


def test_bgr_model_converts_to_an_rgb_hf_model() -> None:
    cfg = tiny_cfg("r50", "INPUT.FORMAT", "BGR")
    ours = randomized_model(cfg)
    hf_model = to_hf(cfg, ours.state_dict(), ["c"] * 133).eval()
    image = photo(0, SIZE)
    x_rgb = normalized(ours, image)
    x_bgr = normalized(ours, image[:, :, ::-1].copy())  # our model: BGR pixels, BGR mean
    hf_x = x_bgr.flip(1)  # the same normalised values in RGB order
    assert _max_diff(query_logits(ours, x_bgr), query_logits(hf_model, hf_x)) <= TOL
    assert (
        _max_diff(query_logits(ours, x_rgb), query_logits(hf_model, x_rgb)) > TOL
    )  # the swap matters
    cfg_back, state = from_hf(hf_model)
    assert cfg_back.INPUT.FORMAT == "BGR"  # the embedded config restores the order
    torch.testing.assert_close(
        state["backbone.stem.conv1.weight"], ours.state_dict()["backbone.stem.conv1.weight"]
    )


@pytest.mark.parametrize(
    "opts, key",
    [
        (("MODEL.SWIN.APE", "True"), "MODEL.SWIN.APE"),
        (("MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME", "BasePixelDecoder"), "PIXEL_DECODER_NAME"),
        (("MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_POINTS", "8"), "N_POINTS"),
    ],
)
def test_unsupported_swin_configs_name_the_key(opts, key) -> None:
    with pytest.raises(UnsupportedConfigError, match=key):
        check_convertible(tiny_cfg("swin", *opts))


@pytest.mark.parametrize(
    "opts, key",
    [
        (("MODEL.RESNETS.RES5_DILATION", "2"), "RES5_DILATION"),
        (("MODEL.RESNETS.NUM_GROUPS", "32"), "NUM_GROUPS"),
        (("MODEL.RESNETS.NORM", "GN"), "MODEL.RESNETS.NORM"),
        (("MODEL.BACKBONE.NAME", "build_resnet_deeplab_backbone"), "MODEL.BACKBONE.NAME"),
    ],
)
def test_unsupported_resnet_configs_name_the_key(opts, key) -> None:
    with pytest.raises(UnsupportedConfigError, match=key):
        check_convertible(tiny_cfg("r50", *opts))


RECIPES = sorted(
    str(p.relative_to(REPO))
    for p in (REPO / "configs").rglob("*.yaml")
    if not p.name.startswith("Base-")
)


def is_video_recipe(config: str) -> bool:
    """Whether the recipe's merged config builds the video model (``VideoMaskFormer``)."""
    chain, path = [], REPO / config
    while path is not None:  # the file and its _BASE_ files
        text = path.read_text()
        chain.append(text)
        base = next(
            (
                line.split(":", 1)[1].strip().strip("\"'")
                for line in text.splitlines()
                if line.startswith("_BASE_:")
            ),
            None,
        )
        path = (path.parent / base) if base else None
    return any("VideoMaskFormer" in text for text in chain)


VIDEO_RECIPES = [c for c in RECIPES if is_video_recipe(c)]


@pytest.mark.parametrize("config", [c for c in RECIPES if c not in VIDEO_RECIPES])
def test_every_recipe_converts(config: str) -> None:
    from mask2former.engine import build_config

    check_convertible(build_config(str(REPO / config), []))


@pytest.mark.parametrize("config", VIDEO_RECIPES)
def test_video_recipes_are_refused_naming_the_meta_architecture(config: str) -> None:
    """transformers has no Video Mask2Former: a clear error, not a broken checkpoint (the 12
    YouTube-VIS recipes, the instant and the quick-start video configs)."""
    assert len(VIDEO_RECIPES) >= 14
    from mask2former.engine import build_config

    with pytest.raises(UnsupportedConfigError, match="MODEL.META_ARCHITECTURE"):
        check_convertible(build_config(str(REPO / config), []))


def test_hf_checkpoint_without_our_config_takes_labels_or_a_base_config() -> None:
    """Checkpoints from elsewhere carry no config of ours: the dataset comes from the label
    names, else from --base-config; without either, a clear error."""
    from mask2former.hf.convert import EMBEDDED_CONFIG_KEY, class_names_for

    cfg = tiny_cfg("r50")
    names = class_names_for(cfg)
    hf_model = to_hf(cfg, build_model(cfg).state_dict(), names)
    delattr(hf_model.config, EMBEDDED_CONFIG_KEY)
    found, _ = from_hf(hf_model)
    assert MetadataCatalog.get(found.DATASETS.TRAIN[0]).stuff_classes == names
    hf_model.config.id2label = {i: f"thing {i}" for i in range(133)}
    with pytest.raises(ValueError, match="--base-config"):
        from_hf(hf_model)
    based, _ = from_hf(hf_model, base_config=str(CONFIGS["r50"]))
    assert based.DATASETS.TRAIN == cfg.DATASETS.TRAIN


@pytest.mark.parametrize("file_format", ["pkl", "plain", "pth"])
def test_weights_load_from_every_checkpoint_format(tmp_path: Path, file_format: str) -> None:
    """--weights takes an official model-zoo .pkl, a plain state dict or a training .pth."""
    import pickle

    from mask2former.hf.convert import load_weights

    cfg = tiny_cfg("r50")
    state = randomized_model(cfg, seed=3).state_dict()
    path = tmp_path / f"weights.{'pkl' if file_format == 'pkl' else 'pth'}"
    if file_format == "pkl":
        with open(path, "wb") as f:
            pickle.dump({"model": {k: v.numpy() for k, v in state.items()}, "__author__": "x"}, f)
    else:
        torch.save(dict(state) if file_format == "plain" else {"model": dict(state)}, path)
    loaded = load_weights(cfg, str(path))
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_weights(cfg, str(tmp_path / "missing.pth"))
    torch.save({k: v for k, v in state.items() if "predictor" not in k}, tmp_path / "part.pth")
    with pytest.raises(ValueError, match="missing keys"):
        load_weights(cfg, str(tmp_path / "part.pth"))
