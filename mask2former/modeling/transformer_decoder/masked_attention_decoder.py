# Masked-attention transformer decoder of Mask2Former (Cheng et al., CVPR 2022,
# github.com/facebookresearch/Mask2Former): each layer cross-attends from the queries to one level
# of the multi-scale pixel-decoder features, restricted to the foreground of the mask predicted by
# the previous layer, then self-attends and applies an FFN. Layer structure and the MLP come from
# DETR (Carion et al., ECCV 2020, github.com/facebookresearch/detr). Module names follow the
# official code so official checkpoints load unchanged.
import logging
from typing import Dict, List, Optional, Tuple

import fvcore.nn.weight_init as weight_init
import torch
from detectron2.config import CfgNode, configurable
from detectron2.layers import Conv2d
from torch import Tensor, nn
from torch.nn import functional as F

from .position_encoding import PositionEmbeddingSine
from .registry import TRANSFORMER_DECODER_REGISTRY

logger = logging.getLogger(__name__)


def _with_pos(tensor: Tensor, pos: Optional[Tensor]) -> Tensor:
    return tensor if pos is None else tensor + pos


def _xavier_init_matrices(module: nn.Module) -> None:
    for p in module.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)


class SelfAttentionLayer(nn.Module):
    """Self-attention among the queries; post-norm by default, pre-norm with ``normalize_before``.

    Tensors are sequence-first: ``tgt`` and ``query_pos`` are [Q, B, C].
    """

    def __init__(
        self, d_model: int, nhead: int, dropout: float = 0.0, normalize_before: bool = False
    ):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.normalize_before = normalize_before
        _xavier_init_matrices(self)

    def forward(self, tgt: Tensor, query_pos: Optional[Tensor] = None) -> Tensor:
        """[Q, B, C] -> [Q, B, C]."""
        x = self.norm(tgt) if self.normalize_before else tgt
        q = k = _with_pos(x, query_pos)
        tgt = tgt + self.dropout(self.self_attn(q, k, value=x)[0])
        return tgt if self.normalize_before else self.norm(tgt)


class CrossAttentionLayer(nn.Module):
    """Masked cross-attention from the queries to one feature level; post-norm by default."""

    def __init__(
        self, d_model: int, nhead: int, dropout: float = 0.0, normalize_before: bool = False
    ):
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.normalize_before = normalize_before
        _xavier_init_matrices(self)

    def forward(
        self,
        tgt: Tensor,
        memory: Tensor,
        memory_mask: Optional[Tensor] = None,
        pos: Optional[Tensor] = None,
        query_pos: Optional[Tensor] = None,
    ) -> Tensor:
        """
        Args:
            tgt, query_pos: [Q, B, C]; memory, pos: [HW, B, C].
            memory_mask: [B*nheads, Q, HW] bool, True = do not attend.
        Returns:
            [Q, B, C]
        """
        x = self.norm(tgt) if self.normalize_before else tgt
        attn = self.multihead_attn(
            query=_with_pos(x, query_pos),
            key=_with_pos(memory, pos),
            value=memory,
            attn_mask=memory_mask,
        )[0]
        tgt = tgt + self.dropout(attn)
        return tgt if self.normalize_before else self.norm(tgt)


class FFNLayer(nn.Module):
    """Two-layer ReLU feed-forward block with a residual; post-norm by default."""

    def __init__(
        self,
        d_model: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.0,
        normalize_before: bool = False,
    ):
        super().__init__()
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.normalize_before = normalize_before
        _xavier_init_matrices(self)

    def forward(self, tgt: Tensor) -> Tensor:
        """[Q, B, C] -> [Q, B, C]."""
        x = self.norm(tgt) if self.normalize_before else tgt
        x = self.linear2(self.dropout(F.relu(self.linear1(x))))
        tgt = tgt + self.dropout(x)
        return tgt if self.normalize_before else self.norm(tgt)


class MLP(nn.Module):
    """Multi-layer perceptron with ReLU between layers (none after the last), as in DETR."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int):
        super().__init__()
        self.num_layers = num_layers
        h = [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(
            nn.Linear(n, k) for n, k in zip([input_dim] + h, h + [output_dim])
        )

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = F.relu(layer(x)) if i < self.num_layers - 1 else layer(x)
        return x


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
        mask_classification: bool = True,
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
            mask_classification: must be True (only mask classification is supported).
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
        if not mask_classification:
            raise ValueError("MultiScaleMaskedTransformerDecoder needs mask_classification=True")
        self.mask_classification = mask_classification
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

        self.num_queries = num_queries
        self.query_feat = nn.Embedding(num_queries, hidden_dim)  # learnable query features
        self.query_embed = nn.Embedding(num_queries, hidden_dim)  # learnable query positions

        self.num_feature_levels = 3
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
    def from_config(cls, cfg: CfgNode, in_channels: int, mask_classification: bool) -> Dict:
        mf = cfg.MODEL.MASK_FORMER
        if mf.DEC_LAYERS < 1:
            raise ValueError(f"MODEL.MASK_FORMER.DEC_LAYERS must be >= 1, got {mf.DEC_LAYERS}")
        return {
            "in_channels": in_channels,
            "mask_classification": mask_classification,
            "num_classes": cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
            "hidden_dim": mf.HIDDEN_DIM,
            "num_queries": mf.NUM_OBJECT_QUERIES,
            "nheads": mf.NHEADS,
            "dim_feedforward": mf.DIM_FEEDFORWARD,
            # DEC_LAYERS counts the prediction from the learned queries (supervised before the
            # first layer), so the number of aux losses equals DEC_LAYERS - 1 + 1.
            "dec_layers": mf.DEC_LAYERS - 1,
            "pre_norm": mf.PRE_NORM,
            "enforce_input_project": mf.ENFORCE_INPUT_PROJ,
            "mask_dim": cfg.MODEL.SEM_SEG_HEAD.MASK_DIM,
        }

    def _load_from_state_dict(
        self,
        state_dict: Dict[str, Tensor],
        prefix: str,
        local_metadata: Dict,
        strict: bool,
        missing_keys: List[str],
        unexpected_keys: List[str],
        error_msgs: List[str],
    ) -> None:
        # Old checkpoints call the learned query features "static_query" (official conversion).
        for k in [k for k in state_dict if k.startswith(prefix + "static_query.")]:
            new_k = prefix + "query_feat." + k[len(prefix + "static_query.") :]
            logger.warning("Renaming %s to %s (old checkpoint layout)", k, new_k)
            state_dict[new_k] = state_dict.pop(k)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def forward(
        self, x: List[Tensor], mask_features: Tensor, mask: Optional[Tensor] = None
    ) -> Dict:
        """
        Args:
            x: 3 multi-scale features [B, in_channels, H_l, W_l], coarse first.
            mask_features: [B, mask_dim, H/4, W/4].
            mask: ignored (the official model does not mask the padded area).
        Returns:
            ``pred_logits`` [B, Q, K+1], ``pred_masks`` [B, Q, H/4, W/4] (final prediction) and
            ``aux_outputs``: list of ``num_layers`` dicts with the same keys, first the
            prediction from the learned queries, then after each layer but the last.
        """
        if len(x) != self.num_feature_levels:
            raise ValueError(
                f"{type(self).__name__} expects {self.num_feature_levels} feature levels, "
                f"got {len(x)}"
            )
        del mask
        src, pos, size_list = [], [], []
        for i in range(self.num_feature_levels):
            size_list.append(x[i].shape[-2:])
            pos.append(self.pe_layer(x[i], None).flatten(2).permute(2, 0, 1))  # [HW, B, C]
            feat = self.input_proj[i](x[i]).flatten(2)  # [B, C, HW]
            feat = feat + self.level_embed.weight[i][None, :, None]
            src.append(feat.permute(2, 0, 1))  # [HW, B, C]
        bs = src[0].shape[1]

        query_embed = self.query_embed.weight.unsqueeze(1).repeat(1, bs, 1)  # [Q, B, C]
        output = self.query_feat.weight.unsqueeze(1).repeat(1, bs, 1)  # [Q, B, C]

        predictions_class, predictions_mask = [], []
        outputs_class, outputs_mask, attn_mask = self.forward_prediction_heads(
            output, mask_features, attn_mask_target_size=size_list[0]
        )
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

            outputs_class, outputs_mask, attn_mask = self.forward_prediction_heads(
                output,
                mask_features,
                attn_mask_target_size=size_list[(i + 1) % self.num_feature_levels],
            )
            predictions_class.append(outputs_class)
            predictions_mask.append(outputs_mask)

        return {
            "pred_logits": predictions_class[-1],
            "pred_masks": predictions_mask[-1],
            "aux_outputs": [
                {"pred_logits": a, "pred_masks": b}
                for a, b in zip(predictions_class[:-1], predictions_mask[:-1])
            ],
        }

    def forward_prediction_heads(
        self, output: Tensor, mask_features: Tensor, attn_mask_target_size: Tuple[int, int]
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """
        Args:
            output: [Q, B, C] query features.
            mask_features: [B, mask_dim, H/4, W/4].
            attn_mask_target_size: (h, w) of the feature level the next layer attends to.
        Returns:
            class logits [B, Q, K+1], mask logits [B, Q, H/4, W/4] and the attention mask for the
            next layer [B*nheads, Q, h*w] (bool, True = do not attend; detached).
        """
        decoder_output = self.decoder_norm(output).transpose(0, 1)  # [B, Q, C]
        outputs_class = self.class_embed(decoder_output)  # [B, Q, K+1]
        mask_embed = self.mask_embed(decoder_output)  # [B, Q, mask_dim]
        outputs_mask = torch.einsum("bqc,bchw->bqhw", mask_embed, mask_features)  # [B, Q, H, W]
        attn_mask = self.attention_mask(outputs_mask, attn_mask_target_size)
        return outputs_class, outputs_mask, attn_mask

    def attention_mask(self, mask_logits: Tensor, size: Tuple[int, int]) -> Tensor:
        """Masked-attention mask from mask logits.

        The logits are bilinearly resized to ``size``; positions with sigmoid < 0.5 are masked
        out. A query whose mask is empty everywhere may attend everywhere instead (otherwise its
        attention softmax would be over nothing).

        Args:
            mask_logits: [B, Q, H, W].
            size: target (h, w).
        Returns:
            [B*nheads, Q, h*w] bool, True = do not attend; detached.
        """
        attn_mask = F.interpolate(mask_logits, size=size, mode="bilinear", align_corners=False)
        attn_mask = attn_mask.sigmoid().flatten(2) < 0.5  # [B, Q, h*w]
        attn_mask = attn_mask.unsqueeze(1).repeat(1, self.num_heads, 1, 1)  # [B, nh, Q, h*w]
        attn_mask = attn_mask.flatten(0, 1).detach()  # [B*nh, Q, h*w]
        attn_mask[attn_mask.all(-1)] = False
        return attn_mask
