# Self- and cross-attention sublayers of Mask2Former's transformer decoder (Cheng et al., CVPR
# 2022), written after DETR's decoder layer (Carion et al., ECCV 2020,
# github.com/facebookresearch/detr): position embeddings are added to queries and keys, not to
# values. Parameter names follow the official code, so official checkpoints load unchanged.
#
# Tensors are sequence-first ([L, B, C]); the memory of a cross-attention may be any flattened
# set of positions (H*W of one image level, or T*H*W of a clip), with a matching attention mask.
from typing import Optional

from torch import Tensor, nn

from .residual import ResidualSublayer


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
        added to queries and keys, not to values. Masks as in ``nn.MultiheadAttention``.
        Returns [L, B, C]."""
        attn: nn.MultiheadAttention = getattr(self, self.attn_name)
        return attn(
            query=with_pos(query, query_pos),
            key=with_pos(memory, memory_pos),
            value=memory,
            attn_mask=attn_mask,
            key_padding_mask=key_padding_mask,
            need_weights=False,  # the weights are not used: lets PyTorch use its fused kernels
        )[0]


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
            memory_mask: optional [B*nhead, Q, S] bool, True = do not attend (masked attention).
            memory_key_padding_mask: optional [B, S] bool, True at padding.
        Returns:
            [Q, B, C]
        """

        def cross_attend(x: Tensor) -> Tensor:
            return self.attend(x, memory, query_pos, pos, memory_mask, memory_key_padding_mask)

        return self.residual(tgt, cross_attend)
