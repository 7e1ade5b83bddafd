from .functions import ms_deform_attn, ms_deform_attn_reference
from .ms_deform_attn import MSDeformAttn

__all__ = ["MSDeformAttn", "ms_deform_attn", "ms_deform_attn_reference"]
