# MaskFormer / Mask2Former segmentation head (Cheng et al., NeurIPS 2021 and CVPR 2022,
# github.com/facebookresearch/Mask2Former): a pixel decoder followed by a transformer decoder
# ("predictor"). Registered under the official name in detectron2's SEM_SEG_HEADS_REGISTRY.
import logging
from typing import Any, Dict, Tuple

from detectron2.config import CfgNode, configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import SEM_SEG_HEADS_REGISTRY
from torch import Tensor, nn

from ..pixel_decoder.registry import build_pixel_decoder
from ..transformer_decoder.registry import build_transformer_decoder

logger = logging.getLogger(__name__)

# MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE values that name a pixel-decoder output.
_PIXEL_DECODER_OUTPUTS = ("multi_scale_pixel_decoder", "transformer_encoder", "pixel_embedding")


@SEM_SEG_HEADS_REGISTRY.register()
class MaskFormerHead(nn.Module):
    """Pixel decoder + transformer decoder.

    ``forward(features)`` returns the predictor's dict: ``pred_logits`` [B, Q, K+1],
    ``pred_masks`` [B, Q, H/4, W/4] and ``aux_outputs`` (list of dicts with the same keys).
    Keys: ``pixel_decoder.*``, ``predictor.*``.
    """

    @configurable
    def __init__(
        self,
        *,
        pixel_decoder: nn.Module,
        transformer_predictor: nn.Module,
        transformer_in_feature: str,
    ):
        """
        Args:
            pixel_decoder: module with ``forward_features(features)``.
            transformer_predictor: the transformer decoder.
            transformer_in_feature: what the predictor reads: "multi_scale_pixel_decoder",
                "transformer_encoder", "pixel_embedding" or the name of a backbone feature.
        """
        super().__init__()
        self.pixel_decoder = pixel_decoder
        self.predictor = transformer_predictor
        self.transformer_in_feature = transformer_in_feature

    @classmethod
    def from_config(cls, cfg: CfgNode, input_shape: Dict[str, ShapeSpec]) -> Dict:
        in_feature = cfg.MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE
        if in_feature in ("multi_scale_pixel_decoder", "transformer_encoder"):
            predictor_in_channels = cfg.MODEL.SEM_SEG_HEAD.CONVS_DIM
        elif in_feature == "pixel_embedding":
            predictor_in_channels = cfg.MODEL.SEM_SEG_HEAD.MASK_DIM
        elif in_feature in input_shape:
            predictor_in_channels = input_shape[in_feature].channels
        else:
            raise ValueError(
                f"MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE {in_feature!r} is neither one of "
                f"{list(_PIXEL_DECODER_OUTPUTS)} nor a backbone feature {sorted(input_shape)}"
            )
        # Official keys read by the official head but used nowhere (SEM_SEG_HEAD.IGNORE_VALUE,
        # LOSS_WEIGHT, NUM_CLASSES: the criterion and the predictor hold what they mean) are not
        # passed on.
        return {
            "pixel_decoder": build_pixel_decoder(cfg, input_shape),
            "transformer_in_feature": in_feature,
            "transformer_predictor": build_transformer_decoder(cfg, predictor_in_channels),
        }

    def _load_from_state_dict(self, state_dict: Dict[str, Tensor], prefix: str, *args: Any) -> None:
        # Old (MaskFormer v1) checkpoints keep the pixel decoder directly under the head
        # ("sem_seg_head.adapter_1.weight"). Unlike the official code, which renames every head key
        # when the checkpoint has no version metadata (breaking plain dicts in the new layout), we
        # rename only keys that are in the old layout and name a pixel-decoder entry.
        decoder_keys = set(self.pixel_decoder.state_dict().keys())
        renamed = 0
        for k in [k for k in state_dict if k.startswith(prefix)]:
            rest = k[len(prefix) :]
            if rest.startswith(("pixel_decoder.", "predictor.")) or rest not in decoder_keys:
                continue
            state_dict[prefix + "pixel_decoder." + rest] = state_dict.pop(k)
            renamed += 1
        if renamed:
            logger.warning(
                "Moved %d keys under %spixel_decoder. (old MaskFormerHead checkpoint layout)",
                renamed,
                prefix,
            )
        super()._load_from_state_dict(state_dict, prefix, *args)

    def forward(self, features: Dict[str, Tensor], aux_predictions: bool = True) -> Dict:
        """
        Args:
            features: backbone features by name, [B, C_l, H_l, W_l].
            aux_predictions: False asks the predictor for the final prediction only
                (``aux_outputs`` empty), which inference uses.
        Returns:
            the predictor's output dict (see the class docstring).
        """
        x, mask_features = self.predictor_inputs(features)
        if aux_predictions:  # the predictor's default: any predictor accepts the call
            return self.predictor(x, mask_features)
        return self.predictor(x, mask_features, aux_predictions=False)

    def predictor_inputs(self, features: Dict[str, Tensor]) -> Tuple[Any, Tensor]:
        """Run the pixel decoder; return what the predictor reads (``transformer_in_feature``:
        the list of multi-scale features [B, C, H_l, W_l], or one map) and the mask features
        [B, mask_dim, H/4, W/4]."""
        mask_features, encoder_features, multi_scale_features = self.pixel_decoder.forward_features(
            features
        )
        in_feature = self.transformer_in_feature
        if in_feature == "multi_scale_pixel_decoder":
            return multi_scale_features, mask_features
        if in_feature == "transformer_encoder":
            if encoder_features is None:
                raise ValueError(
                    "transformer_in_feature 'transformer_encoder' needs a pixel decoder that "
                    f"returns encoder features; {type(self.pixel_decoder).__name__} returns None"
                )
            return encoder_features, mask_features
        if in_feature == "pixel_embedding":
            return mask_features, mask_features
        if in_feature not in features:
            raise ValueError(
                f"transformer_in_feature {in_feature!r} is neither one of "
                f"{list(_PIXEL_DECODER_OUTPUTS)} nor an input feature {sorted(features)}"
            )
        return features[in_feature], mask_features
