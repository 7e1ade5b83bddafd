# Masked-attention transformer decoder of Mask2Former (Cheng et al., CVPR 2022,
# github.com/facebookresearch/Mask2Former): each layer cross-attends from the queries to one level
# of the multi-scale pixel-decoder features, restricted to the foreground of the mask predicted by
# the previous layer, then self-attends and applies an FFN. Layer structure and the MLP come from
# DETR (Carion et al., ECCV 2020, github.com/facebookresearch/detr). Module names follow the
# official code so official checkpoints load unchanged.
import logging
from typing import Any, Callable, Dict, List, Optional, Tuple

import fvcore.nn.weight_init as weight_init
import torch
from detectron2.config import CfgNode, configurable
from detectron2.layers import Conv2d
from torch import Tensor, nn
from torch.nn import functional as F

from ..layers import (
    MLP,
    NUM_MULTI_SCALE_FEATURES,
    CrossAttentionLayer,
    FFNLayer,
    PositionEmbeddingSine,
    SelfAttentionLayer,
    masked_attention_mask,
)
from .registry import TRANSFORMER_DECODER_REGISTRY

logger = logging.getLogger(__name__)

# (class logits, mask prediction or None, attention mask for the next layer)
Prediction = Tuple[Tensor, Optional[Tensor], Tensor]
# heads(query features [Q, B, C], index of the level the next layer attends to, whether this is
# the final prediction) -> Prediction.
PredictionHeads = Callable[[Tensor, int, bool], Prediction]


@TRANSFORMER_DECODER_REGISTRY.register()
class MultiScaleMaskedTransformerDecoder(nn.Module):
    """Mask2Former's transformer decoder (Sec. 3.2 of the paper).

    A prediction is made from the learned queries before the first layer and after every layer;
    layer ``i`` attends to feature level ``i % 3`` with the attention mask of the previous
    prediction.
    """

    @configurable
    def __init__(
        self,
        in_channels: int,
        *,
        num_classes: int,
        hidden_dim: int,
        num_queries: int,
        nheads: int,
        dim_feedforward: int,
        dec_layers: int,
        pre_norm: bool,
        mask_dim: int,
        enforce_input_project: bool,
    ):
        """
        Args:
            in_channels: channels of the multi-scale input features.
            num_classes: number of classes K (the classifier has K + 1 outputs, the last one
                is "no object").
            hidden_dim: query and attention width.
            num_queries: number of learned queries Q.
            nheads: attention heads.
            dim_feedforward: FFN width.
            dec_layers: number of decoder layers (``MODEL.MASK_FORMER.DEC_LAYERS - 1``).
            pre_norm: pre-LayerNorm instead of post-LayerNorm.
            mask_dim: channels of ``mask_features``.
            enforce_input_project: use a 1x1 input projection even if in_channels == hidden_dim.
        """
        super().__init__()
        if dec_layers < 0:
            raise ValueError(f"dec_layers must be >= 0, got {dec_layers}")
        self.pe_layer = PositionEmbeddingSine(hidden_dim // 2, normalize=True)

        self.num_heads = nheads
        self.num_layers = dec_layers
        self.transformer_self_attention_layers = nn.ModuleList(
            SelfAttentionLayer(hidden_dim, nheads, dropout=0.0, normalize_before=pre_norm)
            for _ in range(dec_layers)
        )
        self.transformer_cross_attention_layers = nn.ModuleList(
            CrossAttentionLayer(hidden_dim, nheads, dropout=0.0, normalize_before=pre_norm)
            for _ in range(dec_layers)
        )
        self.transformer_ffn_layers = nn.ModuleList(
            FFNLayer(hidden_dim, dim_feedforward, dropout=0.0, normalize_before=pre_norm)
            for _ in range(dec_layers)
        )
        self.decoder_norm = nn.LayerNorm(hidden_dim)

        self.query_feat = nn.Embedding(num_queries, hidden_dim)  # learnable query features
        self.query_embed = nn.Embedding(num_queries, hidden_dim)  # learnable query positions

        self.num_feature_levels = NUM_MULTI_SCALE_FEATURES
        self.level_embed = nn.Embedding(self.num_feature_levels, hidden_dim)
        self.input_proj = nn.ModuleList()
        for _ in range(self.num_feature_levels):
            if in_channels != hidden_dim or enforce_input_project:
                proj = Conv2d(in_channels, hidden_dim, kernel_size=1)
                weight_init.c2_xavier_fill(proj)
                self.input_proj.append(proj)
            else:
                self.input_proj.append(nn.Sequential())

        self.class_embed = nn.Linear(hidden_dim, num_classes + 1)
        self.mask_embed = MLP(hidden_dim, hidden_dim, mask_dim, 3)

    @classmethod
    def from_config(cls, cfg: CfgNode, in_channels: int) -> Dict:
        mf = cfg.MODEL.MASK_FORMER
        return {
            "in_channels": in_channels,
            "num_classes": cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
            "hidden_dim": mf.HIDDEN_DIM,
            "num_queries": mf.NUM_OBJECT_QUERIES,
            "nheads": mf.NHEADS,
            "dim_feedforward": mf.DIM_FEEDFORWARD,
            # DEC_LAYERS counts the prediction from the learned queries (supervised before the
            # first layer) as a layer: DEC_LAYERS - 1 layers make DEC_LAYERS predictions, the
            # last one final and DEC_LAYERS - 1 auxiliary.
            "dec_layers": mf.DEC_LAYERS - 1,
            "pre_norm": mf.PRE_NORM,
            "enforce_input_project": mf.ENFORCE_INPUT_PROJ,
            "mask_dim": cfg.MODEL.SEM_SEG_HEAD.MASK_DIM,
        }

    def _load_from_state_dict(self, state_dict: Dict[str, Tensor], prefix: str, *args: Any) -> None:
        # Old checkpoints call the learned query features "static_query" (official conversion).
        for k in [k for k in state_dict if k.startswith(prefix + "static_query.")]:
            new_k = prefix + "query_feat." + k[len(prefix + "static_query.") :]
            logger.warning("Renaming %s to %s (old checkpoint layout)", k, new_k)
            state_dict[new_k] = state_dict.pop(k)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def forward(self, x: List[Tensor], mask_features: Tensor, aux_predictions: bool = True) -> Dict:
        """
        Args:
            x: 3 multi-scale features [B, in_channels, H_l, W_l], coarse first.
            mask_features: [B, mask_dim, H/4, W/4].
            aux_predictions: also return the intermediate predictions (training needs them;
                inference does not, and then skips their full-resolution masks).
        Returns:
            ``pred_logits`` [B, Q, K+1], ``pred_masks`` [B, Q, H/4, W/4] (final prediction) and
            ``aux_outputs``: list of ``num_layers`` dicts with the same keys, first the
            prediction from the learned queries, then after each layer but the last (empty
            without ``aux_predictions``).
        """
        self.check_levels(x)
        src, pos, size_list = self.memory(x)
        # The attention masks threshold mask logits resized to each level. Resizing is linear and
        # per channel, so mask_embed . resize(mask_features) = resize(mask_embed . mask_features):
        # the masks are made from the mask features resized once per level.
        with torch.no_grad():
            level_mask_features = [
                F.interpolate(mask_features, size=size, mode="bilinear", align_corners=False)
                for size in size_list
            ]  # [B, mask_dim, H_l, W_l]

        def heads(output: Tensor, level: int, final: bool) -> Prediction:
            return self.forward_prediction_heads(
                output,
                mask_features,
                attn_mask_target_size=size_list[level],
                attn_mask_features=level_mask_features[level],
                predict_masks=aux_predictions or final,
            )

        return self.outputs(*self.decode(src, pos, size_list, heads), aux_predictions)

    def check_levels(self, x: List[Tensor]) -> None:
        """Raise a ValueError unless ``x`` has one feature map per level."""
        if len(x) != self.num_feature_levels:
            raise ValueError(
                f"{type(self).__name__} expects {self.num_feature_levels} feature levels, "
                f"got {len(x)}"
            )

    def memory(self, x: List[Tensor]) -> Tuple[List[Tensor], List[Tensor], List[Tuple[int, int]]]:
        """The cross-attention memory of each level.

        Args:
            x: 3 multi-scale features [B, in_channels, H_l, W_l], coarse first.
        Returns:
            per level: the projected features plus the level embedding [H_l*W_l, B, C], their
            position embeddings [H_l*W_l, B, C], and (H_l, W_l).
        """
        src, pos, size_list = [], [], []
        for i in range(self.num_feature_levels):
            size_list.append(tuple(x[i].shape[-2:]))
            pos.append(self.pe_layer(x[i], None).flatten(2).permute(2, 0, 1))  # [HW, B, C]
            feat = self.input_proj[i](x[i]).flatten(2)  # [B, C, HW]
            feat = feat + self.level_embed.weight[i][None, :, None]
            src.append(feat.permute(2, 0, 1))  # [HW, B, C]
        return src, pos, size_list

    def decode(
        self,
        src: List[Tensor],
        pos: List[Tensor],
        size_list: List[Tuple[int, int]],
        heads: PredictionHeads,
    ) -> Tuple[List[Tensor], List[Tensor]]:
        """The query updates: masked cross-attention, self-attention and FFN per layer.

        Args:
            src, pos, size_list: the memory of each level (:meth:`memory`), [S_l, B, C] each.
            heads: ``heads(output [Q, B, C], level, final)`` -> (class logits, mask prediction
                (may be None unless ``final``), attention mask [B, 1, Q, S] for the level
                ``level`` of ``size_list``), e.g. :meth:`forward_prediction_heads` on the mask
                features.
        Returns:
            the ``num_layers + 1`` class logits and mask predictions of ``heads``: from the
            learned queries, then after each layer.
        """
        bs = src[0].shape[1]
        query_embed = self.query_embed.weight.unsqueeze(1).repeat(1, bs, 1)  # [Q, B, C]
        output = self.query_feat.weight.unsqueeze(1).repeat(1, bs, 1)  # [Q, B, C]

        predictions_class, predictions_mask = [], []
        outputs_class, outputs_mask, attn_mask = heads(output, 0, self.num_layers == 0)
        predictions_class.append(outputs_class)
        predictions_mask.append(outputs_mask)

        for i in range(self.num_layers):
            level_index = i % self.num_feature_levels
            output = self.transformer_cross_attention_layers[i](
                output,
                src[level_index],
                memory_mask=attn_mask,
                pos=pos[level_index],
                query_pos=query_embed,
            )
            output = self.transformer_self_attention_layers[i](output, query_pos=query_embed)
            output = self.transformer_ffn_layers[i](output)

            outputs_class, outputs_mask, attn_mask = heads(
                output, (i + 1) % self.num_feature_levels, i == self.num_layers - 1
            )
            predictions_class.append(outputs_class)
            predictions_mask.append(outputs_mask)
        return predictions_class, predictions_mask

    @staticmethod
    def outputs(
        predictions_class: List[Tensor],
        predictions_mask: List[Optional[Tensor]],
        aux_predictions: bool = True,
    ) -> Dict:
        """The last prediction as ``pred_logits``/``pred_masks``, the others as ``aux_outputs``
        (none without ``aux_predictions``)."""
        aux = zip(predictions_class[:-1], predictions_mask[:-1]) if aux_predictions else ()
        return {
            "pred_logits": predictions_class[-1],
            "pred_masks": predictions_mask[-1],
            "aux_outputs": [{"pred_logits": a, "pred_masks": b} for a, b in aux],
        }

    def forward_prediction_heads(
        self,
        output: Tensor,
        mask_features: Tensor,
        attn_mask_target_size: Tuple[int, int],
        attn_mask_features: Optional[Tensor] = None,
        predict_masks: bool = True,
    ) -> Tuple[Tensor, Optional[Tensor], Tensor]:
        """
        Args:
            output: [Q, B, C] query features.
            mask_features: [B, mask_dim, H/4, W/4].
            attn_mask_target_size: (h, w) of the feature level the next layer attends to.
            attn_mask_features: optional ``mask_features`` resized to (h, w) [B, mask_dim, h, w]:
                the attention mask is then made from them (the same mask, cheaper) instead of
                from the resized mask logits.
            predict_masks: compute the mask logits (otherwise None is returned for them; needs
                ``attn_mask_features``).
        Returns:
            class logits [B, Q, K+1], mask logits [B, Q, H/4, W/4] and the attention mask for the
            next layer [B, 1, Q, h*w] (bool, True = do not attend; detached).
        """
        outputs_class, mask_embed = self.query_heads(output)
        outputs_mask = None
        if predict_masks or attn_mask_features is None:
            outputs_mask = self.mask_logits(mask_embed, mask_features)
        if attn_mask_features is None:
            attn_mask = self.attention_mask(outputs_mask, attn_mask_target_size)
        else:
            with torch.no_grad():
                level_logits = self.mask_logits(mask_embed, attn_mask_features)  # [B, Q, h, w]
            attn_mask = masked_attention_mask(level_logits)  # [B, 1, Q, h*w]
        return outputs_class, outputs_mask, attn_mask

    def query_heads(self, output: Tensor) -> Tuple[Tensor, Tensor]:
        """Query features [Q, B, C] -> class logits [B, Q, K+1], mask embeddings [B, Q, D]."""
        decoder_output = self.decoder_norm(output).transpose(0, 1)  # [B, Q, C]
        return self.class_embed(decoder_output), self.mask_embed(decoder_output)

    @staticmethod
    def mask_logits(mask_embed: Tensor, mask_features: Tensor) -> Tensor:
        """[B, Q, C] mask embeddings x [B, C, H, W] per-pixel features -> [B, Q, H, W] logits."""
        return torch.einsum("bqc,bchw->bqhw", mask_embed, mask_features)

    def attention_mask(self, mask_logits: Tensor, size: Tuple[int, int]) -> Tensor:
        """Masked-attention mask from mask logits.

        The logits are bilinearly resized to ``size`` (each frame of a clip on its own);
        positions with sigmoid < 0.5 are masked out. A query whose mask is empty everywhere may
        attend everywhere instead (otherwise its attention softmax would be over nothing).

        Args:
            mask_logits: [B, Q, H, W], or [B, Q, T, H, W] for a clip.
            size: target (h, w).
        Returns:
            [B, 1, Q, h*w] (clip: [B, 1, Q, T*h*w], frame-major) bool, True = do not
            attend; detached.
        """
        return masked_attention_mask(resize_masks(mask_logits, size))


def resize_masks(mask_logits: Tensor, size: Tuple[int, int]) -> Tensor:
    """Bilinear resize (no corner alignment) of [..., H, W] mask logits with 2 or 3 leading dims
    (B, Q or B, Q, T) to [..., h, w]."""
    resized = F.interpolate(
        mask_logits.flatten(0, -4), size=size, mode="bilinear", align_corners=False
    )  # [B, Q, h, w] or [B*Q, T, h, w]
    return resized.view(*mask_logits.shape[:-2], *size)
