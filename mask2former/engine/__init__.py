from .precision import TrainingAutocast, training_autocast
from .setup import build_config, setup
from .trainer import Trainer

__all__ = ["Trainer", "TrainingAutocast", "build_config", "setup", "training_autocast"]
