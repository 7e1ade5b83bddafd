from .lr_scheduler import build_lr_scheduler
from .optimizer import build_optimizer, get_param_groups

__all__ = ["build_lr_scheduler", "build_optimizer", "get_param_groups"]
