# Transformer decoder of Video Mask2Former ("Mask2Former for Video Instance Segmentation", Cheng
# et al., 2021, github.com/facebookresearch/Mask2Former, mask2former_video/): Mask2Former's
# masked-attention decoder (the image decoder, reused layer for layer) whose queries attend to the
# T x H x W memory of a whole clip, with a 3-D sine position embedding, and predict one mask per
# query and frame: one query is one object tracked through the clip. Module names follow the
# official code, so official checkpoints load unchanged.
from typing import Dict, List, Optional, Tuple

import torch
from detectron2.config import CfgNode, configurable
from torch import Tensor

from ..layers import PositionEmbeddingSine3D, masked_attention_mask
from .masked_attention_decoder import (
    MultiScaleMaskedTransformerDecoder,
    Prediction,
    resize_masks,
)
from .registry import TRANSFORMER_DECODER_REGISTRY

__all__ = ["VideoMultiScaleMaskedTransformerDecoder"]


@TRANSFORMER_DECODER_REGISTRY.register()
class VideoMultiScaleMaskedTransformerDecoder(MultiScaleMaskedTransformerDecoder):
    """The masked-attention decoder on clips.

    Inputs are per-frame features of B clips of T frames, frames of a clip consecutive
    ([B*T, C, H, W]). The memory of a level is the T*H_l*W_l positions of the clip (frame-major),
    so the masked attention of a query covers its mask on every frame.
    """

    @configurable
    def __init__(self, in_channels: int, *, num_frames: int, **kwargs) -> None:
        """
        Args:
            in_channels: channels of the multi-scale input features.
            num_frames: frames per training clip (``INPUT.SAMPLING_FRAME_NUM``): in training mode
                a batch of B*T frames is B clips of this length; in eval mode it is one clip
                of any length (the official convention), unless ``num_videos`` is given.
            kwargs: the arguments of :class:`MultiScaleMaskedTransformerDecoder`.
        """
        super().__init__(in_channels, **kwargs)
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        self.num_frames = num_frames
        self.pe_layer = PositionEmbeddingSine3D(kwargs["hidden_dim"] // 2, normalize=True)

    @classmethod
    def from_config(cls, cfg: CfgNode, in_channels: int) -> Dict:
        ret = super().from_config(cfg, in_channels)
        ret["num_frames"] = cfg.INPUT.SAMPLING_FRAME_NUM
        return ret

    def forward(
        self, x: List[Tensor], mask_features: Tensor, num_videos: Optional[int] = None
    ) -> Dict:
        """
        Args:
            x: 3 multi-scale features [B*T, in_channels, H_l, W_l], coarse first.
            mask_features: [B*T, mask_dim, H/4, W/4].
            num_videos: B; by default ``B*T / num_frames`` in training and 1 in eval mode.
        Returns:
            ``pred_logits`` [B, Q, K+1], ``pred_masks`` [B, Q, T, H/4, W/4] (final prediction)
            and ``aux_outputs``: list of ``num_layers`` dicts with the same keys, first the
            prediction from the learned queries, then after each layer but the last.
        """
        self.check_levels(x)
        clip_features = self.split_clips(mask_features, num_videos)  # [B, T, C, H/4, W/4]
        src, pos, size_list = self.clip_memory(x, clip_features.shape[0])

        def heads(output: Tensor, level: int, final: bool) -> Prediction:
            return self.forward_prediction_heads(output, clip_features, size_list[level])

        return self.outputs(*self.decode(src, pos, size_list, heads))

    def forward_queries(
        self, x: List[Tensor], mask_features: Tensor, frames_per_chunk: int
    ) -> Tuple[Tensor, Tensor]:
        """The final class logits and mask embeddings of one clip, with bounded mask memory.

        The same computation as :meth:`forward` on one clip, except that no [Q, T, H/4, W/4] mask
        logits are kept: each layer's attention mask is built ``frames_per_chunk`` frames at a
        time (mask logits, then resized to the attended level), and the masks themselves are left
        to the caller (:meth:`mask_logits` of the returned embeddings on any frames).

        Args:
            x: 3 multi-scale features [T, in_channels, H_l, W_l] of one clip, coarse first.
            mask_features: [T, mask_dim, H/4, W/4].
            frames_per_chunk: frames whose mask logits are computed at once.
        Returns:
            class logits [1, Q, K+1] and mask embeddings [1, Q, mask_dim] of the last layer.
        """
        self.check_levels(x)
        clip_features = self.split_clips(mask_features, 1)  # [1, T, C, H/4, W/4]
        src, pos, size_list = self.clip_memory(x, 1)

        def heads(output: Tensor, level: int, final: bool) -> Prediction:
            outputs_class, mask_embed = self.query_heads(output)
            resized = torch.cat(
                [
                    resize_masks(self.mask_logits(mask_embed, chunk), size_list[level])
                    for chunk in clip_features.split(frames_per_chunk, dim=1)
                ],
                dim=2,
            )  # [1, Q, T, h, w]
            return outputs_class, mask_embed, masked_attention_mask(resized)

        predictions_class, mask_embeds = self.decode(src, pos, size_list, heads)
        return predictions_class[-1], mask_embeds[-1]

    def split_clips(self, mask_features: Tensor, num_videos: Optional[int]) -> Tensor:
        """[B*T, C, H, W] per-frame features -> [B, T, C, H, W] (see ``num_frames``)."""
        frames = mask_features.shape[0]
        if num_videos is None:
            num_videos = frames // self.num_frames if self.training else 1
        if num_videos < 1 or frames % num_videos:
            raise ValueError(
                f"{type(self).__name__}: {frames} frames are not {num_videos} clips of equal "
                f"length (training clips have num_frames={self.num_frames} frames)"
            )
        return mask_features.view(num_videos, frames // num_videos, *mask_features.shape[1:])

    def clip_memory(
        self, x: List[Tensor], num_videos: int
    ) -> Tuple[List[Tensor], List[Tensor], List[Tuple[int, int]]]:
        """The cross-attention memory of each level, over all frames of each clip.

        Args:
            x: 3 multi-scale features [B*T, in_channels, H_l, W_l], coarse first.
            num_videos: B.
        Returns:
            per level: projected features plus level embedding [T*H_l*W_l, B, C] and their 3-D
            position embeddings [T*H_l*W_l, B, C] (frame-major), and (H_l, W_l).
        """
        src, pos, size_list = [], [], []
        for i in range(self.num_feature_levels):
            frames, _, height, width = x[i].shape
            size_list.append((height, width))
            clip = x[i].view(num_videos, frames // num_videos, -1, height, width)  # [B,T,C,H,W]
            pe = self.pe_layer(clip, None).flatten(3)  # [B, T, C, HW]
            feat = self.input_proj[i](x[i]).flatten(2)  # [B*T, C, HW]
            feat = feat + self.level_embed.weight[i][None, :, None]
            feat = feat.view(num_videos, frames // num_videos, -1, height * width)  # [B,T,C,HW]
            pos.append(pe.permute(1, 3, 0, 2).flatten(0, 1))  # [T, HW, B, C] -> [T*HW, B, C]
            src.append(feat.permute(1, 3, 0, 2).flatten(0, 1))  # [T*HW, B, C]
        return src, pos, size_list

    @staticmethod
    def mask_logits(mask_embed: Tensor, mask_features: Tensor) -> Tensor:
        """[B, Q, C] mask embeddings x [B, T, C, H, W] per-pixel features -> [B, Q, T, H, W]."""
        return torch.einsum("bqc,btchw->bqthw", mask_embed, mask_features)
