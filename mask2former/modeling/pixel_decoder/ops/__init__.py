"""Multi-scale deformable attention (Deformable DETR): ``modules.py`` holds the nn.Module,
``functions.py`` the op (compiled CPU/CUDA kernels in ``csrc/``, and the PyTorch reference)."""

from .functions import ms_deform_attn, ms_deform_attn_reference
from .modules import MSDeformAttn

__all__ = ["MSDeformAttn", "ms_deform_attn", "ms_deform_attn_reference"]
