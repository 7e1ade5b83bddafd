# Position-wise feed-forward network ("Attention is all you need", Vaswani et al. 2017), as in
# DETR (Carion et al., ECCV 2020) and Mask2Former (Cheng et al., CVPR 2022). Parameter names
# (``linear1``, ``linear2``) follow the official code, so official checkpoints load unchanged.
from torch import Tensor, nn

from .linear import linear, mlp
from .residual import ResidualSublayer


class FeedForward:
    """Mixin: ``linear2(dropout(relu(linear1(x))))`` on the host module's ``linear1``,
    ``linear2`` and ``dropout``.

    Used by :class:`FFNLayer` and by the encoder layers, which keep the FFN's parameters directly
    under the layer (official key names ``linear1.*``, ``linear2.*``).
    """

    linear1: nn.Linear
    linear2: nn.Linear
    dropout: nn.Module

    def _add_feed_forward(self, d_model: int, dim_feedforward: int) -> None:
        """Add ``linear1`` (d_model -> dim_feedforward) and ``linear2`` (back to d_model)."""
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)

    def feed_forward(self, x: Tensor) -> Tensor:
        """[..., d_model] -> [..., d_model]."""
        fc1, fc2 = self.linear1, self.linear2
        if not (self.training and self.dropout.p > 0):  # one function, saving less for training
            return mlp(x, fc1.weight, fc1.bias, fc2.weight, fc2.bias, "relu")
        hidden = linear(x, fc1.weight, fc1.bias, relu=True)  # [..., d_ffn]
        return linear(self.dropout(hidden), fc2.weight, fc2.bias)


class FFNLayer(FeedForward, ResidualSublayer):
    """Two-layer ReLU feed-forward block with a residual and LayerNorm; post-norm by default.

    Keys: ``linear1``, ``linear2``, ``norm`` (as the official ``transformer_ffn_layers.N``).
    Tensors are [..., d_model], e.g. [Q, B, C] queries.
    """

    def __init__(
        self,
        d_model: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.0,
        normalize_before: bool = False,
    ):
        """
        Args:
            d_model: token width C.
            dim_feedforward: hidden width of the FFN.
            dropout: dropout inside the FFN and on its output.
            normalize_before: pre-norm (True) or post-norm (False).
        """
        super().__init__()
        self._add_feed_forward(d_model, dim_feedforward)
        self._add_norm(d_model, dropout, normalize_before)

    def forward(self, tgt: Tensor) -> Tensor:
        """[..., C] -> [..., C]."""
        return self.residual(tgt, self.feed_forward)
