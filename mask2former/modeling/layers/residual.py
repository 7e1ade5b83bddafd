# Residual sublayer with LayerNorm, post-norm ("Attention is all you need", Vaswani et al. 2017)
# or pre-norm (Xiong et al., "On Layer Normalization in the Transformer Architecture", ICML 2020),
# as written in DETR (Carion et al., ECCV 2020, github.com/facebookresearch/detr) and reused by
# Mask2Former's encoder and decoder layers. The one place where "x + dropout(f(x))" is normalised.
from typing import Callable

from torch import Tensor, nn


def add_residual(
    x: Tensor,
    sublayer: Callable[[Tensor], Tensor],
    norm: nn.Module,
    dropout: nn.Module,
    normalize_before: bool,
) -> Tensor:
    """``x + dropout(sublayer(norm(x)))`` (pre-norm) or ``norm(x + dropout(sublayer(x)))``.

    Args:
        x: [..., C] tokens.
        sublayer: maps (normalised) tokens [..., C] to [..., C].
        norm: LayerNorm over C; dropout: dropout on the sublayer output.
        normalize_before: pre-norm (True) or post-norm (False).
    Returns:
        [..., C]
    """
    if normalize_before:
        return x + dropout(sublayer(norm(x)))
    return norm(x + dropout(sublayer(x)))


def xavier_init_matrices(module: nn.Module) -> None:
    """Xavier-uniform initialisation of every parameter of ``module`` with more than one dim."""
    for p in module.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)


class ResidualSublayer(nn.Module):
    """Base of a residual sublayer owning one LayerNorm (``norm``) and one dropout (``dropout``).

    A subclass creates its own modules first and then calls :meth:`_add_norm`, so that state-dict
    keys keep the official order (the sublayer's modules, then ``norm``).
    """

    norm: nn.LayerNorm
    dropout: nn.Dropout
    normalize_before: bool

    def _add_norm(self, d_model: int, dropout: float, normalize_before: bool) -> None:
        """Add ``norm`` and ``dropout``, then Xavier-initialise the sublayer's matrices."""
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.normalize_before = normalize_before
        xavier_init_matrices(self)

    def residual(self, x: Tensor, sublayer: Callable[[Tensor], Tensor]) -> Tensor:
        """:func:`add_residual` with this sublayer's norm and dropout."""
        return add_residual(x, sublayer, self.norm, self.dropout, self.normalize_before)
