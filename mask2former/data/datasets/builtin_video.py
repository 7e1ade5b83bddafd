# Copyright (c) the mask2former authors.
"""Builtin video datasets, under the official Video Mask2Former names.

YouTube-VIS 2019 and 2021 (``ytvis_{2019,2021}_{train,val,test}``, 40 classes each) live under
``$DETECTRON2_DATASETS/ytvis_{2019,2021}/`` (read when a dataset is loaded, not at import), laid out
as the official release expects (see datasets/README.md). The embedded synthetic video dataset
(``m2f_synthetic_video_{train,val}``) is generated on first load.
"""

from typing import Tuple

from .categories.ytvis import ytvis_categories
from .synthetic_video import register_synthetic_video_datasets
from .ytvis import register_ytvis_instances, ytvis_metadata

__all__ = ["BUILTIN_YTVIS", "register_all_video_builtin"]

# (dataset name, image folder, json) relative to the dataset root, and the YouTube-VIS year.
BUILTIN_YTVIS: Tuple[Tuple[str, str, str, int], ...] = tuple(
    (
        f"ytvis_{year}_{split}",
        f"ytvis_{year}/{folder}/JPEGImages",
        f"ytvis_{year}/{folder}.json",
        year,
    )
    for year in (2019, 2021)
    for split, folder in (("train", "train"), ("val", "valid"), ("test", "test"))
)


def register_all_video_builtin() -> None:
    """Register YouTube-VIS 2019/2021 (lazy roots; replaces earlier registrations of the same
    names) and the synthetic video dataset."""
    for name, image_root, json_file, year in BUILTIN_YTVIS:
        register_ytvis_instances(
            name,
            ytvis_metadata(ytvis_categories(year)),
            json_file,
            image_root,
            root_relative=True,
            replace=True,
        )
    register_synthetic_video_datasets()
