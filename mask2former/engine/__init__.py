from .setup import build_config, setup
from .train_loop import AutocastTrainer, build_train_loop
from .trainer import Trainer

__all__ = ["AutocastTrainer", "Trainer", "build_config", "build_train_loop", "setup"]
