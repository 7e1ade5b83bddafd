#!/usr/bin/env python
"""The official ``train_net_video.py`` entry point: an alias of ``tools/train_net.py``, which trains
and evaluates video models too (the config's META_ARCHITECTURE picks the clip mappers, and the
dataset's evaluator_type the YouTube-VIS evaluator).

    python tools/train_net_video.py --num-gpus 8 \
        --config-file configs/youtubevis_2019/video_maskformer2_R50_bs16_8ep.yaml
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from train_net import invoke_main, main  # noqa: E402

__all__ = ["invoke_main", "main"]

if __name__ == "__main__":
    invoke_main()
