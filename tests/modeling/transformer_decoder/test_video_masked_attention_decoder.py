"""VideoMultiScaleMaskedTransformerDecoder: clips are decoded independently, each query attends to
all frames of its clip, and the bounded-memory path gives the same predictions."""

from typing import List, Tuple

import pytest
import torch
from torch import Tensor

from mask2former.modeling.transformer_decoder import (
    MultiScaleMaskedTransformerDecoder,
    VideoMultiScaleMaskedTransformerDecoder,
    build_transformer_decoder,
)
from tests.helpers.official_fixtures import official_video_cfg

CHANNELS = 64  # MODEL.SEM_SEG_HEAD.CONVS_DIM / MASK_DIM of the fixture config
LEVEL_SIZES = ((3, 4), (6, 8), (12, 16))  # coarse first
MASK_SIZE = (24, 32)


@pytest.fixture(scope="module")
def decoder() -> VideoMultiScaleMaskedTransformerDecoder:
    torch.manual_seed(0)
    decoder = build_transformer_decoder(official_video_cfg(), CHANNELS)
    # Larger mask embeddings, so that the masked attention masks out part of every clip.
    with torch.no_grad():
        decoder.mask_embed.layers[-1].weight.mul_(8)
    return decoder.eval()


def features(frames: int, seed: int = 0) -> Tuple[List[Tensor], Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = [torch.randn(frames, CHANNELS, *size, generator=generator) for size in LEVEL_SIZES]
    return x, torch.randn(frames, CHANNELS, *MASK_SIZE, generator=generator)


def test_is_the_image_decoder_with_the_official_layout(decoder) -> None:
    assert isinstance(decoder, MultiScaleMaskedTransformerDecoder)
    torch.manual_seed(0)
    image = MultiScaleMaskedTransformerDecoder(
        CHANNELS,
        num_classes=40,
        hidden_dim=64,
        num_queries=16,
        nheads=4,
        dim_feedforward=128,
        dec_layers=3,
        pre_norm=False,
        mask_dim=64,
        enforce_input_project=False,
    )
    assert list(decoder.state_dict()) == list(image.state_dict())
    assert decoder.num_frames == 2


def test_outputs_and_clips_are_independent(decoder) -> None:
    x, mask_features = features(6)  # 2 clips of 3 frames
    with torch.no_grad():
        both = decoder(x, mask_features, num_videos=2)
        first = decoder([f[:3] for f in x], mask_features[:3], num_videos=1)
        second = decoder([f[3:] for f in x], mask_features[3:])  # eval default: one clip
    assert both["pred_logits"].shape == (2, 16, 41)
    assert both["pred_masks"].shape == (2, 16, 3, *MASK_SIZE)
    assert len(both["aux_outputs"]) == 3
    for b, single in enumerate((first, second)):
        for key in ("pred_logits", "pred_masks"):
            torch.testing.assert_close(both[key][b : b + 1], single[key], rtol=1e-4, atol=1e-5)


def test_training_batches_are_clips_of_num_frames(decoder) -> None:
    x, mask_features = features(4)
    decoder.train()
    try:
        with torch.no_grad():
            out = decoder(x, mask_features)  # num_frames = 2: 2 clips
    finally:
        decoder.eval()
    assert out["pred_masks"].shape == (2, 16, 2, *MASK_SIZE)
    with pytest.raises(ValueError, match="not 4 clips of equal length"):
        decoder([f[:3] for f in x], mask_features[:3], num_videos=4)


def test_queries_attend_to_every_frame(decoder) -> None:
    """Changing the last frame changes the masks predicted on the first one."""
    x, mask_features = features(3)
    changed = [f.clone() for f in x]
    for f in changed:
        f[2] = torch.randn_like(f[2])
    with torch.no_grad():
        before = decoder(x, mask_features)["pred_masks"][:, :, 0]
        after = decoder(changed, mask_features)["pred_masks"][:, :, 0]
    assert (before - after).abs().max() > 1e-3


@pytest.mark.parametrize("frames_per_chunk", [1, 2, 3, 5])
def test_forward_queries_gives_the_final_prediction(decoder, frames_per_chunk: int) -> None:
    x, mask_features = features(3)
    with torch.no_grad():
        out = decoder(x, mask_features)
        pred_logits, mask_embed = decoder.forward_queries(x, mask_features, frames_per_chunk)
        masks = decoder.mask_logits(mask_embed, mask_features[None])
    torch.testing.assert_close(pred_logits, out["pred_logits"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(masks, out["pred_masks"], rtol=1e-5, atol=1e-4)
