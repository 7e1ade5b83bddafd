# Masked attention of Mask2Former (Cheng et al., CVPR 2022, Sec. 3.2.1): each query attends only
# within the foreground of the mask it predicted at the previous layer.
from typing import Optional

from torch import Tensor


def masked_attention_mask(mask_logits: Tensor, num_heads: Optional[int] = None) -> Tensor:
    """Cross-attention mask from mask logits already resized to the attended feature map.

    Positions with sigmoid(logit) < 0.5 are masked out. A query whose mask is empty everywhere may
    attend everywhere instead (otherwise its attention softmax would be over nothing).

    Args:
        mask_logits: [B, Q, *spatial] (e.g. [B, Q, h, w] for an image level, [B, Q, T, h, w] for
            a clip), flattened to S = prod(spatial) positions in row-major order.
        num_heads: None: one mask for all heads, [B, 1, Q, S] (what the attention sublayers
            take; a fraction of the memory); a number: the mask repeated for each head,
            [B*num_heads, Q, S] (``nn.MultiheadAttention``'s format, as the official code).
    Returns:
        [B, 1, Q, S] or [B*num_heads, Q, S] bool, True = do not attend; detached.
    """
    attn_mask = mask_logits.detach().sigmoid().flatten(2) < 0.5  # [B, Q, S]
    # A batched op, not boolean indexing: no host-device synchronisation on a GPU.
    attn_mask = attn_mask & ~attn_mask.all(-1, keepdim=True)  # [B, Q, S]
    if num_heads is None:
        return attn_mask.unsqueeze(1)  # [B, 1, Q, S]
    attn_mask = attn_mask.unsqueeze(1).expand(-1, num_heads, -1, -1)  # [B, nh, Q, S]
    return attn_mask.flatten(0, 1)  # [B*nh, Q, S]
