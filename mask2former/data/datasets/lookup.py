# Copyright (c) the mask2former authors.
"""Checking dataset names against detectron2's ``DatasetCatalog``, with close matches.

detectron2's own error for an unregistered name lists every registered dataset (hundreds), and
``MetadataCatalog.get`` silently creates empty metadata for any name, which would turn off the
class-range checks of the mappers. These checks name the bad value and its close matches.
"""

from typing import Iterable

from detectron2.data import DatasetCatalog

from ...utils.suggestions import UnknownNameError, did_you_mean

__all__ = ["check_registered"]


def check_registered(names: Iterable[str], what: str = "dataset") -> None:
    """Raise a KeyError for the first of ``names`` not registered in ``DatasetCatalog``.

    Args:
        names: dataset names, e.g. ``cfg.DATASETS.TRAIN``.
        what: where the names come from, for the message (e.g. "DATASETS.TRAIN").

    Raises:
        UnknownNameError: a KeyError naming the dataset, where it comes from and the registered
            names closest to it (``coco_2017_train_panoptc``: ``coco_2017_train_panoptic``...).
    """
    registered = DatasetCatalog.list()
    for name in names:
        if name not in registered:
            raise UnknownNameError(
                f"Dataset {name!r} ({what}) is not registered{did_you_mean(name, registered)} "
                "(registered datasets: detectron2.data.DatasetCatalog.list(); builtin ones are "
                "listed in datasets/README.md)"
            )
