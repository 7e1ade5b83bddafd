from .mask_former_head import MaskFormerHead

__all__ = ["MaskFormerHead"]
