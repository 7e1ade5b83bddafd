"""PositionEmbeddingSine3D: the 2-D sine embedding of (y, x) plus a sine embedding of the frame."""

import math

import pytest
import torch

from mask2former.modeling.layers import PositionEmbeddingSine, PositionEmbeddingSine3D


def test_shape_and_spatial_part_is_the_2d_embedding() -> None:
    clip = torch.zeros(2, 3, 5, 6, 7)  # [B, T, C, H, W]
    pos = PositionEmbeddingSine3D(16, normalize=True)(clip)
    assert pos.shape == (2, 3, 32, 6, 7) and pos.dtype == torch.float32
    pos_2d = PositionEmbeddingSine(16, normalize=True)(clip[:, 0])  # [B, 32, H, W]
    for t in range(3):
        time_part = pos[:, t] - pos_2d  # the frame's embedding, the same at every position
        torch.testing.assert_close(time_part, time_part[:, :, :1, :1].expand_as(time_part))
    assert not torch.allclose(pos[:, 0], pos[:, 1])


def test_time_embedding_formula() -> None:
    """Frame t of T, normalised to (t + 1) / T * 2 pi, over all 2F channels with wavelengths
    10000 ** (2 * (c // 2) / (2F)): sine on even, cosine on odd channels."""
    num_feats, frames = 8, 4
    clip = torch.zeros(1, frames, 1, 1, 1)
    pos = PositionEmbeddingSine3D(num_feats, normalize=True)(clip)[0, :, :, 0, 0]  # [T, 2F]
    pos_2d = PositionEmbeddingSine(num_feats, normalize=True)(clip[:, 0])[0, :, 0, 0]  # [2F]
    for t in range(frames):
        z = (t + 1) / (frames + 1e-6) * 2 * math.pi
        for c in range(2 * num_feats):
            phase = z / 10000 ** (2 * (c // 2) / (2 * num_feats))
            expected = math.sin(phase) if c % 2 == 0 else math.cos(phase)
            assert pos[t, c] - pos_2d[c] == pytest.approx(expected, abs=1e-5), (t, c)


def test_padding_mask_and_bad_input() -> None:
    clip = torch.zeros(1, 2, 3, 4, 4)
    mask = torch.zeros(1, 2, 4, 4, dtype=torch.bool)
    layer = PositionEmbeddingSine3D(4, normalize=True)
    torch.testing.assert_close(layer(clip, mask), layer(clip))
    mask[:, :, :, 2:] = True  # right half padded: x is normalised over the valid half
    assert not torch.allclose(layer(clip, mask), layer(clip))
    with pytest.raises(ValueError, match=r"\[B, T, C, H, W\]"):
        layer(torch.zeros(1, 3, 4, 4))
