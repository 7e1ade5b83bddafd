"""MaskFormer meta-architecture: backbone -> segmentation head -> criterion / post-processing.

Mask classification for semantic, instance and panoptic segmentation (MaskFormer, Cheng et al.,
NeurIPS 2021; Mask2Former, Cheng et al., CVPR 2022). Registered in detectron2's
``META_ARCH_REGISTRY`` under the official name "MaskFormer".
"""

import contextlib
import inspect
from typing import Any, ContextManager, Dict, List, Optional, Sequence, Tuple

import torch
from detectron2.config import CfgNode, configurable
from detectron2.data import MetadataCatalog
from detectron2.modeling import META_ARCH_REGISTRY, Backbone, build_backbone, build_sem_seg_head
from detectron2.modeling.postprocessing import sem_seg_postprocess
from detectron2.structures import BitMasks, ImageList, Instances
from detectron2.utils.memory import retry_if_cuda_oom
from torch import Tensor, nn
from torch.nn import functional as F
from torch.profiler import record_function

from ...utils.amp import autocast_dtype
from ...utils.cpu_memory import keep_freed_cpu_memory
from ..backbone import fold_frozen_batchnorm
from ..criterion import build_criterion
from ..postprocessing import mask_classification_inference, semantic_inference
from .base import MaskClassificationModel

__all__ = ["MaskFormer", "inference_amp_dtype"]


def inference_amp_dtype(cfg: CfgNode) -> Optional[torch.dtype]:
    """The autocast dtype of inference, from ``TEST.AMP.{ENABLED,DTYPE}``; None for float32.

    float16 is a CUDA feature: on another ``MODEL.DEVICE`` inference stays float32, with a
    warning (as ``SOLVER.AMP`` does for training).
    """
    return autocast_dtype(cfg.TEST.AMP.ENABLED, cfg.TEST.AMP.DTYPE, cfg.MODEL.DEVICE, "TEST.AMP")


@META_ARCH_REGISTRY.register()
class MaskFormer(MaskClassificationModel):
    """Mask-classification segmentation model.

    Training: ``forward`` returns the weighted losses of ``criterion``. Inference: one dict per
    image with ``sem_seg``, ``panoptic_seg`` and/or ``instances`` as ``*_on`` select.
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        sem_seg_head: nn.Module,
        criterion: nn.Module,
        object_mask_threshold: float,
        overlap_threshold: float,
        metadata: Any,
        size_divisibility: int,
        sem_seg_postprocess_before_inference: bool,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        semantic_on: bool,
        panoptic_on: bool,
        instance_on: bool,
        test_topk_per_image: int,
        inference_amp_dtype: Optional[torch.dtype] = None,
        keep_freed_memory: bool = False,
    ) -> None:
        """
        Args:
            backbone: a detectron2 backbone.
            sem_seg_head: maps backbone features to ``pred_logits`` [B, Q, K+1], ``pred_masks``
                [B, Q, H/4, W/4] and ``aux_outputs``.
            criterion: the training loss (see ``CRITERION_REGISTRY``): ``criterion(outputs,
                targets)`` gives unweighted losses; its ``weight_dict`` weights (and selects) them.
            object_mask_threshold: panoptic: minimum class score of a kept query.
            overlap_threshold: panoptic: minimum visible / own area ratio of a segment.
            metadata: dataset metadata; ``thing_dataset_id_to_contiguous_id`` gives the thing
                classes (needed when ``panoptic_on``).
            size_divisibility: pad images to a multiple of this; < 0 uses the backbone's.
            sem_seg_postprocess_before_inference: resize mask logits to the output size before
                inference (True), or resize the semantic result after it (False, semantic only).
            pixel_mean, pixel_std: per-channel normalisation of the input image.
            semantic_on, panoptic_on, instance_on: which results inference returns.
            test_topk_per_image: instance candidates kept per image.
            inference_amp_dtype: run the network (not the post-processing) under
                ``torch.autocast`` in this dtype at inference (e.g. ``torch.bfloat16``); None:
                float32.
            keep_freed_memory: at the first inference on a CPU, make glibc's malloc keep freed
                memory for the rest of the process (:func:`keep_freed_cpu_memory`: no page
                faults for the large tensors of every call; the process keeps its peak memory).
        """
        if not semantic_on and not sem_seg_postprocess_before_inference:
            raise ValueError(
                "sem_seg_postprocess_before_inference=False is only supported for semantic "
                "inference alone; set it to True when semantic_on is False"
            )
        super().__init__(
            backbone, sem_seg_head, criterion, size_divisibility, pixel_mean, pixel_std
        )
        self.object_mask_threshold = object_mask_threshold
        self.overlap_threshold = overlap_threshold
        self.metadata = metadata
        self.sem_seg_postprocess_before_inference = sem_seg_postprocess_before_inference
        self.semantic_on = semantic_on
        self.panoptic_on = panoptic_on
        self.instance_on = instance_on
        self.test_topk_per_image = test_topk_per_image
        self.inference_amp_dtype = inference_amp_dtype
        self.keep_freed_memory = keep_freed_memory
        # Inference asks the head for the final prediction only, when its forward takes the
        # argument (MaskFormerHead does; another SEM_SEG_HEADS entry may not).
        self.head_skips_aux_predictions = (
            "aux_predictions" in inspect.signature(sem_seg_head.forward).parameters
        )

    @classmethod
    def from_config(cls, cfg: CfgNode) -> Dict[str, Any]:
        # The config is validated where it is built (mask2former.engine.build_config).
        mf = cfg.MODEL.MASK_FORMER
        backbone = fold_frozen_batchnorm(build_backbone(cfg))  # ResNet: one op per conv + BN
        sem_seg_head = build_sem_seg_head(cfg, backbone.output_shape())
        return {
            "backbone": backbone,
            "sem_seg_head": sem_seg_head,
            "criterion": build_criterion(cfg),
            "object_mask_threshold": mf.TEST.OBJECT_MASK_THRESHOLD,
            "overlap_threshold": mf.TEST.OVERLAP_THRESHOLD,
            "metadata": MetadataCatalog.get(cfg.DATASETS.TRAIN[0]),
            "size_divisibility": mf.SIZE_DIVISIBILITY,
            "sem_seg_postprocess_before_inference": (
                mf.TEST.SEM_SEG_POSTPROCESSING_BEFORE_INFERENCE
                or mf.TEST.PANOPTIC_ON
                or mf.TEST.INSTANCE_ON
            ),
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "keep_freed_memory": cfg.TEST.CPU_KEEP_FREED_MEMORY,
            "semantic_on": mf.TEST.SEMANTIC_ON,
            "panoptic_on": mf.TEST.PANOPTIC_ON,
            "instance_on": mf.TEST.INSTANCE_ON,
            "test_topk_per_image": cfg.TEST.DETECTIONS_PER_IMAGE,
            "inference_amp_dtype": inference_amp_dtype(cfg),
        }

    def forward(self, batched_inputs: List[Dict[str, Any]]) -> Any:
        """
        Args:
            batched_inputs: one dict per image (detectron2 mapper output) with ``image`` [3, H, W]
                (0..255, the channel order of ``pixel_mean``), for training ``instances``
                (``gt_classes`` [M], ``gt_masks`` BitMasks or [M, H, W]), and optionally the output
                size ``height``/``width`` for inference, and optionally ``sample_seed`` (int,
                training: the seed of the image's random point sampling).

        Returns:
            Training: dict of weighted losses (only those named in ``criterion.weight_dict``).
            Inference: one dict per image with, as enabled, ``sem_seg`` [K, height, width] scores,
            ``panoptic_seg`` ([height, width] int32 ids, segments_info list) and ``instances``.
        """
        images = self.preprocess([x["image"] for x in batched_inputs])  # padded with 0
        # Channels-last: the convolutions' fastest layout on CPU (oneDNN) and GPU (cuDNN).
        network_input = images.tensor.contiguous(memory_format=torch.channels_last)

        if self.training:
            outputs = self.sem_seg_head(self.backbone(network_input))
            return self.losses(outputs, self.prepare_targets(batched_inputs, images))

        if self.keep_freed_memory and self.device.type == "cpu":
            keep_freed_cpu_memory()
        with self.inference_autocast():
            features = self.backbone(network_input)
            if self.head_skips_aux_predictions:
                outputs = self.sem_seg_head(features, aux_predictions=False)
            else:
                outputs = self.sem_seg_head(features)

        padded_size = tuple(images.tensor.shape[-2:])
        processed_results = []
        for mask_cls, mask_pred, input_per_image, image_size in zip(
            outputs["pred_logits"], outputs["pred_masks"], batched_inputs, images.image_sizes
        ):
            height = input_per_image.get("height", image_size[0])
            width = input_per_image.get("width", image_size[1])
            with record_function("mask2former::postprocess"):
                processed_results.append(
                    self.inference_single(
                        mask_cls.float(),  # post-processing in float32, also after autocast
                        mask_pred.float(),
                        padded_size,
                        tuple(image_size),
                        height,
                        width,
                    )
                )
        return processed_results

    def inference_autocast(self) -> ContextManager:
        """``torch.autocast`` in ``inference_amp_dtype`` on the model's device, or a no-op."""
        if self.inference_amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.inference_amp_dtype)

    def prepare_targets(
        self, batched_inputs: List[Dict[str, Any]], images: ImageList
    ) -> List[Dict[str, Tensor]]:
        """Criterion targets: ``labels`` [M] and ``masks`` [M, H_pad, W_pad] zero-padded like the
        images; with ``generator`` (a ``torch.Generator`` seeded with it) when the input has a
        ``sample_seed``."""
        h_pad, w_pad = images.tensor.shape[-2:]
        targets = []
        for i, x in enumerate(batched_inputs):
            if "instances" not in x:
                raise ValueError(f"training input {i} has no 'instances' (keys: {sorted(x)})")
            instances: Instances = x["instances"].to(self.device)
            gt_masks = instances.gt_masks
            if isinstance(gt_masks, BitMasks):
                gt_masks = gt_masks.tensor
            if not isinstance(gt_masks, Tensor):
                raise TypeError(
                    f"training input {i}: gt_masks must be BitMasks or a Tensor, "
                    f"got {type(gt_masks).__name__} (use INPUT.MASK_FORMAT bitmask)"
                )
            padded_masks = gt_masks.new_zeros((gt_masks.shape[0], h_pad, w_pad))  # [M, Hp, Wp]
            padded_masks[:, : gt_masks.shape[1], : gt_masks.shape[2]] = gt_masks
            target = {"labels": instances.gt_classes, "masks": padded_masks}
            if "sample_seed" in x:  # the image's own random points (mask2former.data.samplers)
                target["generator"] = torch.Generator(self.device).manual_seed(x["sample_seed"])
            targets.append(target)
        return targets

    def inference_single(
        self,
        mask_cls: Tensor,
        mask_pred: Tensor,
        padded_size: Tuple[int, int],
        image_size: Tuple[int, int],
        height: int,
        width: int,
    ) -> Dict[str, Any]:
        """Results for one image.

        Args:
            mask_cls: [Q, K+1] class logits.
            mask_pred: [Q, h, w] mask logits at the network's resolution (stride 4 of the padded
                input).
            padded_size: (H_pad, W_pad) of the padded network input.
            image_size: (h, w) of the image inside the padding.
            height, width: requested output size.
        """
        if not self.sem_seg_postprocess_before_inference:  # semantic only, official order
            mask_pred = F.interpolate(
                mask_pred[None], size=padded_size, mode="bilinear", align_corners=False
            )[0]  # [Q, H_pad, W_pad]
            sem_seg = retry_if_cuda_oom(semantic_inference)(mask_cls, mask_pred)
            return {
                "sem_seg": retry_if_cuda_oom(sem_seg_postprocess)(
                    sem_seg, image_size, height, width
                )
            }
        return retry_if_cuda_oom(mask_classification_inference)(
            mask_cls,
            mask_pred,
            padded_size=padded_size,
            image_size=image_size,
            output_size=(height, width),
            semantic_on=self.semantic_on,
            panoptic_on=self.panoptic_on,
            instance_on=self.instance_on,
            num_classes=mask_cls.shape[-1] - 1,
            object_mask_threshold=self.object_mask_threshold,
            overlap_threshold=self.overlap_threshold,
            thing_ids=self.thing_ids if self.panoptic_on else None,
            test_topk_per_image=self.test_topk_per_image,
        )

    @property
    def thing_ids(self) -> List[int]:
        """Contiguous thing class ids: ``metadata.thing_dataset_id_to_contiguous_id`` values."""
        mapping = getattr(self.metadata, "thing_dataset_id_to_contiguous_id", None)
        if mapping is None:
            name = getattr(self.metadata, "name", repr(self.metadata))
            raise ValueError(
                f"dataset metadata '{name}' has no thing_dataset_id_to_contiguous_id, which "
                "panoptic inference needs to tell things from stuff (set it, or turn "
                "MODEL.MASK_FORMER.TEST.PANOPTIC_ON off)"
            )
        return sorted(mapping.values())
