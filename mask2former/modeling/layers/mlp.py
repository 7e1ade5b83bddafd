# Multi-layer perceptron of DETR (Carion et al., ECCV 2020, github.com/facebookresearch/detr,
# models/detr.py), Mask2Former's mask-embedding head.
from torch import Tensor, nn
from torch.nn import functional as F


class MLP(nn.Module):
    """Multi-layer perceptron with ReLU between layers (none after the last).

    Keys: ``layers.N.weight``/``bias``, as in the official ``mask_embed``.
    """

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int):
        """
        Args:
            input_dim, hidden_dim, output_dim: widths of the input, hidden and output features.
            num_layers: number of Linear layers (>= 1).
        """
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"MLP needs num_layers >= 1, got {num_layers}")
        self.num_layers = num_layers
        h = [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(
            nn.Linear(n, k) for n, k in zip([input_dim] + h, h + [output_dim])
        )

    def forward(self, x: Tensor) -> Tensor:
        """[..., input_dim] -> [..., output_dim]."""
        for i, layer in enumerate(self.layers):
            x = F.relu(layer(x)) if i < self.num_layers - 1 else layer(x)
        return x
