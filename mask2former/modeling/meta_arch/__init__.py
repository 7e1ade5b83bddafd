from .mask_former import MaskFormer  # noqa: F401  (registers "MaskFormer" in META_ARCH_REGISTRY)

__all__ = ["MaskFormer"]
