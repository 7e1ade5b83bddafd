# Transformer encoder layer (self-attention, then a feed-forward network, each residual with
# LayerNorm) as in DETR (Carion et al., ECCV 2020, github.com/facebookresearch/detr) and Deformable
# DETR (Zhu et al., ICLR 2021, github.com/fundamentalvision/Deformable-DETR). One class for both:
# only the self-attention differs (dense multi-head, or multi-scale deformable in the pixel
# decoder). Parameter names follow the official code: ``self_attn``, ``norm1``, ``linear1``,
# ``linear2``, ``norm2``.
import copy
from typing import Any, Optional

from torch import Tensor, nn

from .attention import with_pos
from .ffn import FeedForward
from .residual import add_residual


def clone_layers(layer: nn.Module, num_layers: int) -> nn.ModuleList:
    """``num_layers`` deep copies of ``layer`` (keys ``N.*``, as DETR's ``_get_clones``)."""
    return nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))


class EncoderLayer(FeedForward, nn.Module):
    """Self-attention sublayer (``self_attn``, ``norm1``) then FFN sublayer (``linear1``,
    ``linear2``, ``norm2``); post-norm by default.

    Subclasses give the attention module and implement :meth:`self_attention`, which receives the
    (normalised) tokens, their position embedding and the subclass's keyword arguments.
    """

    def __init__(
        self,
        self_attn: nn.Module,
        d_model: int,
        dim_feedforward: int,
        dropout: float,
        normalize_before: bool = False,
    ):
        """
        Args:
            self_attn: the attention module (registered as ``self_attn``).
            d_model: token width C; dim_feedforward: hidden width of the FFN.
            dropout: dropout inside the FFN and on both sublayer outputs.
            normalize_before: pre-norm (True) or post-norm (False).
        """
        super().__init__()
        self.self_attn = self_attn
        self.norm1 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self._add_feed_forward(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout2 = nn.Dropout(dropout)
        self.normalize_before = normalize_before

    def self_attention(self, x: Tensor, pos: Optional[Tensor], **kwargs: Any) -> Tensor:
        """Attention output for tokens ``x`` with position embedding ``pos`` (same shape)."""
        raise NotImplementedError

    def forward(self, src: Tensor, pos: Optional[Tensor] = None, **attn_kwargs: Any) -> Tensor:
        """
        Args:
            src, pos: tokens and their position embedding, in the layout of the subclass's
                attention ([S, B, C] for :class:`TransformerEncoderLayer`).
            attn_kwargs: passed on to :meth:`self_attention`.
        Returns:
            tokens of the shape of ``src``.
        """

        def attend(x: Tensor) -> Tensor:
            return self.self_attention(x, pos, **attn_kwargs)

        src = add_residual(src, attend, self.norm1, self.dropout1, self.normalize_before)
        return add_residual(
            src, self.feed_forward, self.norm2, self.dropout2, self.normalize_before
        )


class TransformerEncoderLayer(EncoderLayer):
    """DETR encoder layer: dense multi-head self-attention + FFN. Tensors are [S, B, C]."""

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        normalize_before: bool = False,
    ):
        """``nhead``: attention heads; other arguments as in :class:`EncoderLayer`."""
        attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        super().__init__(attn, d_model, dim_feedforward, dropout, normalize_before)

    def self_attention(
        self, x: Tensor, pos: Optional[Tensor], key_padding_mask: Optional[Tensor] = None
    ) -> Tensor:
        """x, pos: [S, B, C]; key_padding_mask: optional [B, S] bool (True at padding)."""
        q = k = with_pos(x, pos)
        return self.self_attn(q, k, value=x, key_padding_mask=key_padding_mask, need_weights=False)[
            0
        ]
