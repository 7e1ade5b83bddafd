"""Building blocks shared by the pixel decoders and the transformer decoders, image and video
(the attention sublayers take any flattened memory, e.g. the T*H*W positions of a clip).

One concept per file: position encoding, residual sublayer, FFN, attention sublayers, encoder
layer, MLP, FPN top-down path, masked-attention mask, the number of multi-scale levels, and
the inference-time CPU linear layer.
"""

from .attention import AttentionSublayer, CrossAttentionLayer, SelfAttentionLayer, with_pos
from .encoder_layer import EncoderLayer, TransformerEncoderLayer, clone_layers
from .feature_levels import NUM_MULTI_SCALE_FEATURES
from .ffn import FeedForward, FFNLayer
from .fpn import add_fpn_convs, fpn_merge, output_conv
from .linear import linear
from .masked_attention import masked_attention_mask
from .mlp import MLP
from .position_encoding import PositionEmbeddingSine, PositionEmbeddingSine3D
from .residual import ResidualSublayer, add_residual, xavier_init_matrices

__all__ = [
    "MLP",
    "NUM_MULTI_SCALE_FEATURES",
    "AttentionSublayer",
    "CrossAttentionLayer",
    "EncoderLayer",
    "FFNLayer",
    "FeedForward",
    "PositionEmbeddingSine",
    "PositionEmbeddingSine3D",
    "ResidualSublayer",
    "SelfAttentionLayer",
    "TransformerEncoderLayer",
    "add_fpn_convs",
    "add_residual",
    "clone_layers",
    "fpn_merge",
    "linear",
    "masked_attention_mask",
    "output_conv",
    "with_pos",
    "xavier_init_matrices",
]
