from .frozen_bn import FrozenBNConv2d, fold_frozen_batchnorm  # noqa: F401
from .swin import D2SwinTransformer, SwinTransformer  # noqa: F401  (registers D2SwinTransformer)
