"""VideoMaskFormer meta-architecture: Mask2Former's backbone and head on every frame of a clip, with
a transformer decoder whose queries attend to all frames at once, so that one query is one object
tracked through the video ("Mask2Former for Video Instance Segmentation", Cheng et al., 2021).

Registered in detectron2's ``META_ARCH_REGISTRY`` under the official name "VideoMaskFormer"; the
backbone, ``MaskFormerHead``, pixel decoder, matcher and losses are the image model's.
"""

from functools import partial
from typing import Any, Dict, List, Sequence, Tuple

import torch
from detectron2.config import CfgNode, configurable
from detectron2.modeling import META_ARCH_REGISTRY, Backbone, build_backbone, build_sem_seg_head
from detectron2.structures import BitMasks, ImageList, Instances
from torch import Tensor, nn

from ..backbone import fold_frozen_batchnorm
from ..criterion import SetCriterion, VideoSetCriterion, build_criterion
from ..video_inference import (
    VIDEO_TOPK,
    masks_at_output_size,
    pad_frames,
    padded_size,
    top_predictions,
    video_result,
    windowed_masks,
)
from .base import MaskClassificationModel

__all__ = ["VideoMaskFormer", "is_video_meta_architecture"]


def is_video_meta_architecture(name: str) -> bool:
    """Whether the registered ``MODEL.META_ARCHITECTURE`` ``name`` takes clips (its class has
    ``takes_clips = True``, as :class:`VideoMaskFormer`): its data are mapped to clips
    (``build_video_dataset_mapper``)."""
    if name not in META_ARCH_REGISTRY:
        return False
    return bool(getattr(META_ARCH_REGISTRY.get(name), "takes_clips", False))


@META_ARCH_REGISTRY.register()
class VideoMaskFormer(MaskClassificationModel):
    """Video instance segmentation by mask classification.

    Training: ``forward`` returns the weighted losses of ``criterion`` on clips of ``num_frames``
    frames. Inference (one video per call, as officially): the official result dict of the
    video, from one pass over all its frames, or (``window_inference``) with the backbone and
    pixel decoder run ``window_size`` frames at a time and the masks built window by window.
    """

    takes_clips = True

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        sem_seg_head: nn.Module,
        criterion: nn.Module,
        num_frames: int,
        size_divisibility: int,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        test_topk_per_video: int = VIDEO_TOPK,
        window_inference: bool = False,
        window_size: int = 30,
    ) -> None:
        """
        Args:
            backbone: a detectron2 backbone, run on every frame.
            sem_seg_head: ``MaskFormerHead`` with a clip transformer decoder (e.g.
                ``VideoMultiScaleMaskedTransformerDecoder``): per-frame features ->
                ``pred_logits`` [B, Q, K+1], ``pred_masks`` [B, Q, T, H/4, W/4], ``aux_outputs``.
            criterion: the training loss on clips (see ``CRITERION_REGISTRY``); its
                ``weight_dict`` weights (and selects) the losses.
            num_frames: frames per training clip.
            size_divisibility: pad frames to a multiple of this; < 0 uses the backbone's.
            pixel_mean, pixel_std: per-channel normalisation of the input frames.
            test_topk_per_video: (query, class) pairs kept per video (10, as officially).
            window_inference: bound the memory of inference (see the class docstring).
            window_size: frames per window.

        ``TEST.CPU_KEEP_FREED_MEMORY`` is for image models: a video is one large call of its own
        size, and keeping freed memory raised the peak of a windowed 100-frame inference from 6.7
        to 10.3 GB (it saved a third of the time), against what window inference is for.
        """
        if window_size < 1:
            raise ValueError(f"window_size must be >= 1, got {window_size}")
        predictor = getattr(sem_seg_head, "predictor", None)
        if window_inference and not (
            callable(getattr(sem_seg_head, "predictor_inputs", None))
            and callable(getattr(predictor, "forward_queries", None))
        ):
            raise ValueError(
                "window inference needs a head with predictor_inputs() (MaskFormerHead) and a "
                "transformer decoder with forward_queries() (e.g. "
                f"VideoMultiScaleMaskedTransformerDecoder), got {type(sem_seg_head).__name__} "
                f"with {type(predictor).__name__}"
            )
        super().__init__(
            backbone, sem_seg_head, criterion, size_divisibility, pixel_mean, pixel_std
        )
        self.num_frames = num_frames
        self.test_topk_per_video = test_topk_per_video
        self.window_inference = window_inference
        self.window_size = window_size

    @classmethod
    def from_config(cls, cfg: CfgNode) -> Dict[str, Any]:
        mf = cfg.MODEL.MASK_FORMER
        backbone = fold_frozen_batchnorm(build_backbone(cfg))  # ResNet: one op per conv + BN
        # The official video YAML files name no criterion: the image default means the video one.
        criterion_name = mf.CRITERION_NAME
        if criterion_name == SetCriterion.__name__:
            criterion_name = VideoSetCriterion.__name__
        return {
            "backbone": backbone,
            "sem_seg_head": build_sem_seg_head(cfg, backbone.output_shape()),
            "criterion": build_criterion(cfg, criterion_name),
            "num_frames": cfg.INPUT.SAMPLING_FRAME_NUM,
            "size_divisibility": mf.SIZE_DIVISIBILITY,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "window_inference": mf.TEST.WINDOW_INFERENCE,
            "window_size": mf.TEST.WINDOW_SIZE,
        }

    def forward(self, batched_inputs: List[Dict[str, Any]]) -> Any:
        """
        Args:
            batched_inputs: one dict per video (clip mapper output) with ``image``: T frames
                [3, H, W] (0..255, the channel order of ``pixel_mean``); for training
                ``instances``: T ``Instances`` with the same N tracks in the same order (``gt_ids``
                [N], -1 where absent, ``gt_classes`` [N], ``gt_masks`` [N, H, W] bool or
                BitMasks); for inference optionally the output size ``height``/``width``.

        Returns:
            Training: dict of weighted losses (only those named in ``criterion.weight_dict``).
            Inference (one video): ``image_size`` (height, width), ``pred_scores`` (k floats,
            best first), ``pred_labels`` (k contiguous class ids) and ``pred_masks`` (k
            [T, height, width] bool tensors), k = ``test_topk_per_video``.
        """
        if self.training:
            return self.forward_train(batched_inputs)
        if len(batched_inputs) != 1:
            raise ValueError(
                f"VideoMaskFormer inference takes one video per call, got {len(batched_inputs)}"
            )
        video = batched_inputs[0]
        frames = list(video["image"])
        if not frames:
            raise ValueError(f"video {video.get('video_id', '')!r} has no frames")
        height = video.get("height", frames[0].shape[-2])
        width = video.get("width", frames[0].shape[-1])
        if self.window_inference:
            return self.inference_windows(frames, (height, width))
        return self.inference_video(frames, (height, width))

    def forward_train(self, batched_inputs: List[Dict[str, Any]]) -> Dict[str, Tensor]:
        """Weighted losses of a batch of clips of ``num_frames`` frames each."""
        for i, video in enumerate(batched_inputs):
            if len(video["image"]) != self.num_frames:
                raise ValueError(
                    f"training video {i} has {len(video['image'])} frames, expected "
                    f"num_frames={self.num_frames} (INPUT.SAMPLING_FRAME_NUM)"
                )
        frames = [frame for video in batched_inputs for frame in video["image"]]
        images = self.preprocess(frames)
        outputs = self.sem_seg_head(self.backbone(images.tensor))
        return self.losses(outputs, self.prepare_targets(batched_inputs, images))

    def prepare_targets(
        self, batched_inputs: List[Dict[str, Any]], images: ImageList
    ) -> List[Dict[str, Tensor]]:
        """Criterion targets per video, for the tracks present in at least one frame:
        ``labels`` [N] (each track's class where it is present), ``ids`` [N, T] (-1 where
        absent) and ``masks`` [N, T, H_pad, W_pad] float, zero-padded like the frames; with
        ``generator`` (a ``torch.Generator`` seeded with it) when the input has a
        ``sample_seed``."""
        h_pad, w_pad = images.tensor.shape[-2:]
        targets = []
        for i, video in enumerate(batched_inputs):
            if "instances" not in video:
                raise ValueError(f"training video {i} has no 'instances' (keys: {sorted(video)})")
            frames: List[Instances] = [x.to(self.device) for x in video["instances"]]
            num_tracks = len(frames[0])
            if any(len(x) != num_tracks for x in frames):
                raise ValueError(
                    f"training video {i}: frames have {[len(x) for x in frames]} instances; "
                    "every frame must list the same tracks (gt_ids -1 where absent)"
                )
            masks = torch.zeros(
                (num_tracks, len(frames), h_pad, w_pad), dtype=torch.bool, device=self.device
            )  # [N, T, Hp, Wp]
            for t, instances in enumerate(frames):
                frame_masks = instances.gt_masks
                if isinstance(frame_masks, BitMasks):
                    frame_masks = frame_masks.tensor
                masks[:, t, : frame_masks.shape[-2], : frame_masks.shape[-1]] = frame_masks
            ids = torch.stack([x.gt_ids for x in frames], dim=1)  # [N, T]
            classes = torch.stack([x.gt_classes for x in frames], dim=1)  # [N, T]
            first_present = (ids != -1).int().argmax(dim=1)  # [N]
            labels = classes.gather(1, first_present[:, None])[:, 0]  # [N]
            valid = (ids != -1).any(dim=1)  # [N]: tracks seen in at least one frame
            target = {"labels": labels[valid], "ids": ids[valid], "masks": masks[valid].float()}
            if "sample_seed" in video:  # the clip's own random points (mask2former.data.samplers)
                target["generator"] = torch.Generator(self.device).manual_seed(video["sample_seed"])
            targets.append(target)
        return targets

    def inference_video(self, frames: List[Tensor], output_size: Tuple[int, int]) -> Dict[str, Any]:
        """The official inference: all frames through the model at once."""
        images = self.preprocess(frames)
        outputs = self.sem_seg_head(self.backbone(images.tensor))
        scores, labels, queries = top_predictions(
            outputs["pred_logits"][0], self.test_topk_per_video
        )
        masks = masks_at_output_size(
            outputs["pred_masks"][0, queries],  # [k, T, H/4, W/4]
            tuple(images.tensor.shape[-2:]),
            images.image_sizes[0],
            output_size,
        )
        return video_result(scores, labels, masks, output_size)

    def inference_windows(
        self, frames: List[Tensor], output_size: Tuple[int, int]
    ) -> Dict[str, Any]:
        """The same results as :meth:`inference_video`, with the backbone and pixel decoder
        run on ``window_size`` frames at a time, the decoder attending to the features of all
        frames (assembled), and the masks of the kept predictions built window by window."""
        head, window = self.sem_seg_head, self.window_size
        image_sizes = [tuple(frame.shape[-2:]) for frame in frames]
        padded = padded_size(image_sizes, self.size_divisibility)
        levels: List[List[Tensor]] = []
        mask_features: List[Tensor] = []
        for start in range(0, len(frames), window):
            batch = pad_frames(self.normalize(frames[start : start + window]), padded)
            x, features = head.predictor_inputs(self.backbone(batch))
            levels.append(x)
            mask_features.append(features)
        multi_scale = [torch.cat(level) for level in zip(*levels)]  # each [T, C, H_l, W_l]
        clip = torch.cat(mask_features)  # [T, C, H/4, W/4]
        del levels, mask_features
        pred_logits, mask_embed = head.predictor.forward_queries(multi_scale, clip, window)
        del multi_scale
        scores, labels, queries = top_predictions(pred_logits[0], self.test_topk_per_video)
        embed = mask_embed[:, queries]  # [1, k, C]
        clip = clip[None]  # [1, T, C, H/4, W/4]
        masks = windowed_masks(
            lambda frame_slice: head.predictor.mask_logits(embed, clip[:, frame_slice])[0],
            len(frames),
            window,
            partial(
                masks_at_output_size,
                padded=padded,
                image_size=image_sizes[0],
                output_size=output_size,
            ),
        )
        return video_result(scores, labels, masks, output_size)
