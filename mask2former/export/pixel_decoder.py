# An export-friendly forward of the multi-scale deformable-attention pixel decoder
# (Mask2Former, Cheng et al., CVPR 2022; the encoder is Deformable DETR's, Zhu et al., ICLR 2021),
# computed with the trained modules of an `MSDeformAttnPixelDecoder`.
#
# Why a second forward: the training code carries the level sizes as an int64 tensor
# (`spatial_shapes`, which the compiled kernels need) and reads them back with `.tolist()`. For
# `torch.export` (the ONNX exporter's front end) a value read back from a tensor is data dependent,
# so a graph with dynamic H and W cannot be built from it; a TorchScript trace bakes the sizes of
# the example input in. Here the level sizes are taken from the feature maps' shapes (symbolic
# under export) and the deformable sampling is the `grid_sample` formulation of the PyTorch
# reference (`ms_deform_attn_reference`), which ONNX has as `GridSample` (opset >= 16).
# `tests/export/test_onnx_export.py` checks it against the module's own forward.
from typing import Dict, List, Sequence, Tuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..modeling.pixel_decoder.msdeformattn import (
    NUM_MULTI_SCALE_FEATURES,
    MSDeformAttnPixelDecoder,
    MSDeformAttnTransformerEncoderLayer,
)
from ..modeling.pixel_decoder.ops import MSDeformAttn

__all__ = ["ExportMSDeformAttnPixelDecoder", "deformable_sampling", "reference_points"]

Shapes = Sequence[Tuple[int, int]]


def reference_points(shapes: Shapes, device: torch.device) -> Tensor:
    """Pixel centres of every level normalised to [0, 1], without padding (valid ratio 1).

    Returns:
        [1, S, 1, 2] (x, y), S = sum_l H_l*W_l; broadcasts over the batch and the levels.
    """
    points = []
    for h, w in shapes:
        ys = (torch.arange(h, dtype=torch.float32, device=device) + 0.5) / h  # [H]
        xs = (torch.arange(w, dtype=torch.float32, device=device) + 0.5) / w  # [W]
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")  # [H, W] each
        points.append(torch.stack((grid_x.reshape(-1), grid_y.reshape(-1)), -1))  # [H*W, 2]
    return torch.cat(points, 0)[None, :, None]  # [1, S, 1, 2]


def deformable_sampling(
    value: Tensor, shapes: Shapes, sampling_locations: Tensor, attention_weights: Tensor
) -> Tensor:
    """Multi-scale deformable attention by bilinear ``grid_sample`` (zero padding).

    Args:
        value: [N, S, M, D].
        shapes: L level sizes (H_l, W_l), plain or symbolic ints.
        sampling_locations: [N, Lq, M, L, P, 2] in [0, 1], (x, y).
        attention_weights: [N, Lq, M, L, P].
    Returns:
        [N, Lq, M*D]
    """
    n, _, m, d = value.shape
    _, lq, _, num_levels, num_points, _ = sampling_locations.shape
    grids = 2 * sampling_locations - 1  # [N, Lq, M, L, P, 2] in [-1, 1]
    values = value.split([h * w for h, w in shapes], dim=1)
    sampled = []
    for level, (h, w) in enumerate(shapes):
        # [N, H*W, M, D] -> [N*M, D, H, W]
        value_l = values[level].permute(0, 2, 3, 1).reshape(n * m, d, h, w)
        # [N, Lq, M, P, 2] -> [N*M, Lq, P, 2]
        grid_l = grids[:, :, :, level].transpose(1, 2).reshape(n * m, lq, num_points, 2)
        sampled.append(
            F.grid_sample(
                value_l, grid_l, mode="bilinear", padding_mode="zeros", align_corners=False
            )
        )  # [N*M, D, Lq, P]
    sampled_values = torch.stack(sampled, dim=-2).flatten(-2)  # [N*M, D, Lq, L*P]
    # [N, Lq, M, L, P] -> [N*M, 1, Lq, L*P]
    weights = attention_weights.transpose(1, 2).reshape(n * m, 1, lq, num_levels * num_points)
    output = (sampled_values * weights).sum(-1)  # [N*M, D, Lq]
    return output.reshape(n, m * d, lq).transpose(1, 2)  # [N, Lq, M*D]


def _deformable_attention(
    attn: MSDeformAttn, query: Tensor, value_input: Tensor, ref: Tensor, shapes: Shapes
) -> Tensor:
    """``MSDeformAttn.forward`` for 2-d reference points and no padding mask; [N, Lq, C]."""
    n, lq, _ = query.shape
    s = value_input.shape[1]
    heads, levels, points = attn.n_heads, attn.n_levels, attn.n_points
    value = attn.value_proj(value_input).view(n, s, heads, attn.d_model // heads)  # [N,S,M,D]
    offsets = attn.sampling_offsets(query).view(n, lq, heads, levels, points, 2)
    weights = attn.attention_weights(query).view(n, lq, heads, levels * points).softmax(-1)
    weights = weights.view(n, lq, heads, levels, points)  # [N, Lq, M, L, P]
    # (W_l, H_l) per level: [L, 2]. Built by multiplying a one, so that the sizes stay symbolic
    # under torch.export and traced under torch.jit.trace (torch.tensor would freeze them).
    one = query.new_ones(())
    normalizer = torch.stack([torch.stack([one * w, one * h]) for h, w in shapes])
    locations = ref[:, :, None, :, None, :] + offsets / normalizer[None, None, None, :, None, :]
    return attn.output_proj(deformable_sampling(value, shapes, locations, weights))


def _encoder_layer(
    layer: MSDeformAttnTransformerEncoderLayer,
    src: Tensor,
    pos: Tensor,
    ref: Tensor,
    shapes: Shapes,
) -> Tensor:
    """``MSDeformAttnTransformerEncoderLayer.forward`` in eval mode; [B, S, C]."""
    src = layer.norm1(src + _deformable_attention(layer.self_attn, src + pos, src, ref, shapes))
    return layer.norm2(src + layer.linear2(F.relu(layer.linear1(src))))


class ExportMSDeformAttnPixelDecoder(nn.Module):
    """``forward_features`` of an :class:`MSDeformAttnPixelDecoder` (eval mode, no padding mask)
    that ``torch.export`` and ONNX can take with dynamic input sizes. Holds the decoder itself,
    so the weights are shared."""

    def __init__(self, decoder: MSDeformAttnPixelDecoder) -> None:
        super().__init__()
        if not isinstance(decoder, MSDeformAttnPixelDecoder):
            raise TypeError(f"expected an MSDeformAttnPixelDecoder, got {type(decoder).__name__}")
        self.decoder = decoder

    def forward_features(
        self, features: Dict[str, Tensor], padding_mask: None = None
    ) -> Tuple[Tensor, Tensor, List[Tensor]]:
        """Same inputs and outputs as ``MSDeformAttnPixelDecoder.forward_features``."""
        if padding_mask is not None:
            raise ValueError("the export pixel decoder takes no padding mask (as the official)")
        dec = self.decoder
        transformer = dec.transformer
        srcs, pos = [], []
        for idx, name in enumerate(dec.transformer_in_features[::-1]):  # coarse to fine
            x = features[name].float()
            srcs.append(dec.input_proj[idx](x))  # [B, C, H_l, W_l]
            pos.append(dec.pe_layer(x))  # [B, C, H_l, W_l]
        shapes = [(x.shape[-2], x.shape[-1]) for x in srcs]
        src = torch.cat([x.flatten(2).transpose(1, 2) for x in srcs], 1)  # [B, S, C]
        pos_flat = torch.cat(
            [
                p.flatten(2).transpose(1, 2) + transformer.level_embed[lvl].view(1, 1, -1)
                for lvl, p in enumerate(pos)
            ],
            1,
        )  # [B, S, C]
        ref = reference_points(shapes, src.device)  # [1, S, 1, 2]
        for layer in transformer.encoder.layers:
            src = _encoder_layer(layer, src, pos_flat, ref, shapes)

        batch = src.shape[0]
        out = [
            z.transpose(1, 2).reshape(batch, -1, h, w)  # [B, S_l, C] -> [B, C, H_l, W_l]
            for z, (h, w) in zip(src.split([h * w for h, w in shapes], dim=1), shapes)
        ]
        for idx, name in enumerate(dec.in_features[: dec.num_fpn_levels][::-1]):
            lateral = dec.lateral_convs[idx](features[name].float())
            y = lateral + F.interpolate(
                out[-1], size=lateral.shape[-2:], mode="bilinear", align_corners=False
            )
            out.append(dec.output_convs[idx](y))
        return dec.mask_features(out[-1]), out[0], out[:NUM_MULTI_SCALE_FEATURES]
