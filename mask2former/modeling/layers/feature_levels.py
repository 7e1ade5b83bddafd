# The multi-scale contract between the pixel decoder and the transformer decoder of Mask2Former
# (Cheng et al., CVPR 2022, Sec. 3.2.2 "multi-scale high-resolution features"): the pixel decoder
# hands over the feature maps at strides 32, 16 and 8 (coarse first), and the masked-attention
# decoder's layers attend to them round robin.

# Number of feature levels the pixel decoder returns as ``multi_scale_features`` and the
# transformer decoder attends to (one level embedding and input projection each).
NUM_MULTI_SCALE_FEATURES = 3
