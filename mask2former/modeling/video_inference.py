"""Video instance segmentation results of Video Mask2Former ("Mask2Former for Video Instance
Segmentation", Cheng et al., 2021), whole-video or in windows of frames.

The official inference (``VideoMaskFormer.inference_video``) keeps the 10 best (query, class)
pairs of a video by class probability, each with its query's masks on every frame, upsampled to
the padded input, cropped to the image and resized to the output size, thresholded at logit 0.
Here the queries are chosen before the upsampling (the same values: bilinear resizing treats each
query and frame on its own), and the masks can be built a window of frames at a time, so that no
[Q, T, H, W] float logits of the whole video are ever held.

Shape shorthand: Q queries, K classes, T frames, k kept predictions.
"""

from typing import Any, Callable, Dict, List, Sequence, Tuple

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = [
    "VIDEO_TOPK",
    "masks_at_output_size",
    "pad_frames",
    "padded_size",
    "top_predictions",
    "video_result",
    "windowed_masks",
]

# Predictions kept per video, as the official inference (a constant there).
VIDEO_TOPK = 10


def top_predictions(pred_logits: Tensor, topk: int = VIDEO_TOPK) -> Tuple[Tensor, Tensor, Tensor]:
    """The ``topk`` best (query, class) pairs by class probability (softmax over K+1, no-object
    dropped), best first.

    Args:
        pred_logits: [Q, K+1] class logits of the video's queries.
        topk: pairs kept (at most Q*K).
    Returns:
        scores [k], contiguous class ids [k] int64, query indices [k] int64.
    """
    num_classes = pred_logits.shape[-1] - 1
    scores = F.softmax(pred_logits, dim=-1)[:, :-1]  # [Q, K]
    k = min(topk, scores.numel())
    top_scores, flat_indices = scores.flatten().topk(k)  # [k], over Q*K
    return top_scores, flat_indices % num_classes, flat_indices // num_classes


def padded_size(image_sizes: Sequence[Tuple[int, int]], size_divisibility: int) -> Tuple[int, int]:
    """The size frames are padded to, as detectron2's ``ImageList.from_tensors``: the largest
    height and width, rounded up to a multiple of ``size_divisibility`` (when > 1)."""
    height = max(h for h, _ in image_sizes)
    width = max(w for _, w in image_sizes)
    if size_divisibility > 1:
        height = -(-height // size_divisibility) * size_divisibility
        width = -(-width // size_divisibility) * size_divisibility
    return height, width


def pad_frames(frames: Sequence[Tensor], size: Tuple[int, int]) -> Tensor:
    """[3, h_t, w_t] frames -> [T, 3, H, W] zero-padded at the bottom and right (as
    ``ImageList.from_tensors``)."""
    batch = frames[0].new_zeros((len(frames), frames[0].shape[0], *size))  # [T, 3, H, W]
    for i, frame in enumerate(frames):
        batch[i, :, : frame.shape[-2], : frame.shape[-1]].copy_(frame)
    return batch


def masks_at_output_size(
    mask_logits: Tensor,
    padded: Tuple[int, int],
    image_size: Tuple[int, int],
    output_size: Tuple[int, int],
) -> Tensor:
    """Low-resolution mask logits -> binary masks at the output size, as the official inference.

    Args:
        mask_logits: [k, T, h, w] logits (stride 4 of the padded frames).
        padded: (H_pad, W_pad), the padded input size; image_size: (h, w) of the frames inside
            the padding; output_size: (height, width) requested.
    Returns:
        [k, T, height, width] bool (logit > 0).
    """
    logits = F.interpolate(mask_logits, size=padded, mode="bilinear", align_corners=False)
    logits = logits[:, :, : image_size[0], : image_size[1]]  # [k, T, h, w]
    logits = F.interpolate(logits, size=output_size, mode="bilinear", align_corners=False)
    return logits > 0.0


def windowed_masks(
    mask_logits: Callable[[Tensor], Tensor],
    num_frames: int,
    window_size: int,
    to_output: Callable[[Tensor], Tensor],
) -> Tensor:
    """Build the masks of the kept predictions ``window_size`` frames at a time.

    Args:
        mask_logits: frame slice -> [k, T_w, h, w] mask logits of those frames.
        num_frames: T.
        window_size: frames per window.
        to_output: [k, T_w, h, w] logits -> [k, T_w, height, width] bool (e.g.
            :func:`masks_at_output_size` with the video's sizes).
    Returns:
        [k, T, height, width] bool on the CPU.
    """
    windows = []
    for start in range(0, num_frames, window_size):
        window = slice(start, min(start + window_size, num_frames))
        windows.append(to_output(mask_logits(window)).cpu())  # [k, T_w, height, width]
    return torch.cat(windows, dim=1)


def video_result(
    scores: Tensor, labels: Tensor, masks: Tensor, output_size: Tuple[int, int]
) -> Dict[str, Any]:
    """The official result dict of one video.

    Args:
        scores: [k]; labels: [k] contiguous class ids; masks: [k, T, height, width] bool.
    Returns:
        ``image_size`` (height, width), ``pred_scores`` (k floats), ``pred_labels`` (k ints) and
        ``pred_masks`` (k [T, height, width] bool CPU tensors).
    """
    masks = masks.cpu()
    pred_masks: List[Tensor] = list(masks.unbind(0))
    return {
        "image_size": tuple(output_size),
        "pred_scores": scores.tolist(),
        "pred_labels": labels.tolist(),
        "pred_masks": pred_masks,
    }
