# Self- and cross-attention sublayers of Mask2Former's transformer decoder (Cheng et al., CVPR
# 2022), written after DETR's decoder layer (Carion et al., ECCV 2020,
# github.com/facebookresearch/detr): position embeddings are added to queries and keys, not to
# values. Parameter names follow the official code, so official checkpoints load unchanged.
#
# Tensors are sequence-first ([L, B, C]); the memory of a cross-attention may be any flattened
# set of positions (H*W of one image level, or T*H*W of a clip), with a matching attention mask.
#
# The attention is computed by ``multi_head_attention`` below with the parameters of an
# ``nn.MultiheadAttention`` (the official module and keys), in the same steps as PyTorch's own
# ``F.multi_head_attention_forward`` for these layers (separate q/k/v projections, scaled
# dot-product attention, output projection), with two differences: the masked-attention mask may
# be one [B, 1, L, S] mask broadcast over the heads instead of nheads copies (the official
# [B*nheads, L, S] float mask is saved for the backward pass at every layer: 26 MB per layer at
# 1/8 of a 512x512 batch of 2), and the projections go through ``linear`` (oneDNN on CPU).
from typing import Optional

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .linear import linear
from .residual import ResidualSublayer


def multi_head_attention(
    attn: nn.MultiheadAttention,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Optional[Tensor] = None,
    key_padding_mask: Optional[Tensor] = None,
) -> Tensor:
    """``attn(query, key, value, attn_mask, key_padding_mask, need_weights=False)[0]`` of a
    sequence-first ``nn.MultiheadAttention`` with packed input projections and biases (how the
    sublayers build it), with a mask that may broadcast over the heads.

    Args:
        query: [L, B, C]; key, value: [S, B, C].
        attn_mask: optional bool (True = do not attend), [L, S], [B*nheads, L, S] (as
            ``nn.MultiheadAttention``) or [B, 1 or nheads, L, S].
        key_padding_mask: optional [B, S] bool, True at padding.
    Returns:
        [L, B, C]
    """
    length, batch, width = query.shape
    heads = attn.num_heads
    if attn.in_proj_weight is None or attn.in_proj_bias is None or attn.batch_first:
        raise ValueError(
            "multi_head_attention expects a sequence-first nn.MultiheadAttention "
            "with packed input projections and biases"
        )
    w_q, w_k, w_v = attn.in_proj_weight.chunk(3)
    b_q, b_k, b_v = attn.in_proj_bias.chunk(3)

    def split_heads(x: Tensor) -> Tensor:  # [N, B, C] -> [B, nheads, N, C/nheads]
        return x.view(x.shape[0], batch, heads, width // heads).permute(1, 2, 0, 3)

    q = split_heads(linear(query, w_q, b_q))
    k = split_heads(linear(key, w_k, b_k))
    v = split_heads(linear(value, w_v, b_v))
    mask = None
    if attn_mask is not None:
        mask = attn_mask
        if mask.dim() == 3:  # [B*nheads, L, S]
            mask = mask.view(batch, heads, *mask.shape[1:])
        if mask.dtype != torch.bool:
            raise TypeError(f"attn_mask must be bool (True = do not attend), got {mask.dtype}")
    if key_padding_mask is not None:
        padding = key_padding_mask.view(batch, 1, 1, -1)
        mask = padding if mask is None else mask | padding
    # The official float mask is 0 / -inf; SDPA turns a bool mask into the same values.
    out = F.scaled_dot_product_attention(
        q, k, v, attn_mask=None if mask is None else ~mask,
        dropout_p=attn.dropout if attn.training else 0.0,
    )  # [B, nheads, L, C/nheads]  # fmt: skip
    out = out.permute(2, 0, 1, 3).reshape(length * batch, width)
    return linear(out, attn.out_proj.weight, attn.out_proj.bias).view(length, batch, width)


def with_pos(tensor: Tensor, pos: Optional[Tensor]) -> Tensor:
    """``tensor + pos`` (both [L, B, C]), or ``tensor`` when ``pos`` is None."""
    return tensor if pos is None else tensor + pos


class AttentionSublayer(ResidualSublayer):
    """Base of the attention sublayers: an ``nn.MultiheadAttention`` registered under the
    subclass's ``attn_name`` (the official key), then ``norm``; post-norm by default."""

    attn_name: str

    def __init__(
        self, d_model: int, nhead: int, dropout: float = 0.0, normalize_before: bool = False
    ):
        """
        Args:
            d_model: query width C; nhead: attention heads.
            dropout: dropout on the attention weights and on the sublayer output.
            normalize_before: pre-norm (True) or post-norm (False).
        """
        super().__init__()
        self.add_module(self.attn_name, nn.MultiheadAttention(d_model, nhead, dropout=dropout))
        self._add_norm(d_model, dropout, normalize_before)

    def attend(
        self,
        query: Tensor,
        memory: Tensor,
        query_pos: Optional[Tensor],
        memory_pos: Optional[Tensor],
        attn_mask: Optional[Tensor],
        key_padding_mask: Optional[Tensor],
    ) -> Tensor:
        """Attention of ``query`` [L, B, C] over ``memory`` [S, B, C]; the position embeddings are
        added to queries and keys, not to values. Masks as in :func:`multi_head_attention` (bool;
        ``nn.MultiheadAttention``'s shapes, or one [B, 1, L, S] mask for all heads).
        Returns [L, B, C]."""
        return multi_head_attention(
            getattr(self, self.attn_name),
            query=with_pos(query, query_pos),
            key=with_pos(memory, memory_pos),
            value=memory,
            attn_mask=attn_mask,
            key_padding_mask=key_padding_mask,
        )


class SelfAttentionLayer(AttentionSublayer):
    """Self-attention among the queries; post-norm by default, pre-norm with ``normalize_before``.

    Keys: ``self_attn.*`` (an ``nn.MultiheadAttention``) and ``norm.*``.
    """

    attn_name = "self_attn"
    self_attn: nn.MultiheadAttention

    def forward(
        self,
        tgt: Tensor,
        query_pos: Optional[Tensor] = None,
        attn_mask: Optional[Tensor] = None,
        key_padding_mask: Optional[Tensor] = None,
    ) -> Tensor:
        """
        Args:
            tgt, query_pos: [Q, B, C].
            attn_mask: optional [Q, Q] or [B*nhead, Q, Q] bool, True = do not attend.
            key_padding_mask: optional [B, Q] bool, True at padding.
        Returns:
            [Q, B, C]
        """

        def self_attend(x: Tensor) -> Tensor:
            return self.attend(x, x, query_pos, query_pos, attn_mask, key_padding_mask)

        return self.residual(tgt, self_attend)


class CrossAttentionLayer(AttentionSublayer):
    """(Masked) cross-attention from the queries to a memory; post-norm by default.

    Keys: ``multihead_attn.*`` (an ``nn.MultiheadAttention``) and ``norm.*``.
    """

    attn_name = "multihead_attn"
    multihead_attn: nn.MultiheadAttention

    def forward(
        self,
        tgt: Tensor,
        memory: Tensor,
        memory_mask: Optional[Tensor] = None,
        pos: Optional[Tensor] = None,
        query_pos: Optional[Tensor] = None,
        memory_key_padding_mask: Optional[Tensor] = None,
    ) -> Tensor:
        """
        Args:
            tgt, query_pos: [Q, B, C] queries and their position embedding.
            memory, pos: [S, B, C] keys/values and their position embedding (S = H*W of one
                image level, or T*H*W of a clip).
            memory_mask: optional bool, True = do not attend (masked attention): [B, 1, Q, S]
                (one mask for all heads, as ``masked_attention_mask`` gives it), [B, nhead, Q, S]
                or [B*nhead, Q, S].
            memory_key_padding_mask: optional [B, S] bool, True at padding.
        Returns:
            [Q, B, C]
        """

        def cross_attend(x: Tensor) -> Tensor:
            return self.attend(x, memory, query_pos, pos, memory_mask, memory_key_padding_mask)

        return self.residual(tgt, cross_attend)
