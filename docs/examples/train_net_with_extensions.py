#!/usr/bin/env python
"""``tools/train_net.py`` with the extensions of this folder registered.

    python docs/examples/train_net_with_extensions.py \
        --config-file docs/examples/custom_backbone.yaml

Same command line as ``tools/train_net.py`` (``--eval-only``, ``--resume``, ``--num-gpus``, config
overrides). A project of your own does the same: import the modules that register its components,
then run the trainer. With ``--num-gpus N`` each worker process imports this file again (as
``__mp_main__``), so the components are registered there too.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1] / "tools")]

import custom_backbone  # noqa: E402,F401  (registers TinyConvBackbone)
import custom_criterion  # noqa: E402,F401  (registers SetCriterionWithFullMaskDice)
import custom_dataset  # noqa: E402,F401  (registers the my_shapes datasets)
import custom_evaluator  # noqa: E402,F401  (registers "pixel_accuracy")
import custom_pixel_decoder  # noqa: E402,F401  (registers LateralSumPixelDecoder)
import train_net  # noqa: E402  (tools/train_net.py)

if __name__ == "__main__":
    train_net.invoke_main()
