from .checkpoint import Checkpointer, CheckpointError
from .precision import TrainingAutocast, training_autocast
from .setup import build_config, setup
from .trainer import Trainer

__all__ = [
    "CheckpointError",
    "Checkpointer",
    "Trainer",
    "TrainingAutocast",
    "build_config",
    "setup",
    "training_autocast",
]
