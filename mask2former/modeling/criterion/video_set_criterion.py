"""Set-prediction loss of Video Mask2Former ("Mask2Former for Video Instance Segmentation", Cheng et
al., 2021): the image :class:`SetCriterion` on clips.

As in the official ``VideoSetCriterion``, one query predicts one instance over all T frames of a
clip: the matcher compares the masks of all frames at once (the same points in every frame), the
mask losses treat each frame of a matched pair as a mask with its own importance-sampled points,
and the sums are divided by the number of instances. The classification loss is the image one.
"""

from typing import Any, Dict, List

from torch import Tensor

from .registry import CRITERION_REGISTRY
from .set_criterion import SetCriterion

__all__ = ["VideoSetCriterion"]


@CRITERION_REGISTRY.register()
class VideoSetCriterion(SetCriterion):
    """:class:`SetCriterion` for clip outputs, with the official name; built from the same keys.

    ``VideoMaskFormer`` selects it when ``MODEL.MASK_FORMER.CRITERION_NAME`` is the image
    default, so the official video YAML files need no criterion key.
    """

    def forward(
        self, outputs: Dict[str, Any], targets: List[Dict[str, Tensor]]
    ) -> Dict[str, Tensor]:
        """
        Args:
            outputs: ``pred_logits`` [B, Q, K+1], ``pred_masks`` [B, Q, T, h, w] and optionally
                ``aux_outputs``: a list of dicts with the same two keys.
            targets: B dicts with ``labels`` [M] int64 and ``masks`` [M, T, H, W] (bool or float)
                covering the same (padded) frames as ``pred_masks``; instances absent from a frame
                have an empty mask there.

        Returns:
            Unweighted losses ``loss_ce``, ``loss_mask``, ``loss_dice`` and, for every aux
            prediction i, the same names with suffix ``_i``.

        Raises:
            ValueError: the outputs or a target are not clips of the same length.
        """
        pred_masks = outputs["pred_masks"]
        if pred_masks.dim() != 5:
            raise ValueError(
                "VideoSetCriterion expects pred_masks [B, Q, T, h, w], got "
                f"{tuple(pred_masks.shape)} (use SetCriterion for images)"
            )
        num_frames = pred_masks.shape[2]
        for i, target in enumerate(targets):
            masks = target["masks"]
            if masks.dim() != 4 or masks.shape[1] != num_frames:
                raise ValueError(
                    f"VideoSetCriterion: target {i} has masks of shape {tuple(masks.shape)}, "
                    f"expected [M, {num_frames}, H, W] (instances x the clip's frames)"
                )
        return super().forward(outputs, targets)
