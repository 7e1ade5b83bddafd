"""Conversion to and from ``transformers``' ``Mask2FormerForUniversalSegmentation`` (optional extra
``pip install -e .[hf]``). ``config`` and ``state_dict`` map configs and keys; ``convert`` (which
imports ``transformers``) builds the models. Command-line tools: ``tools/convert_to_hf.py`` and
``tools/convert_from_hf.py``.
"""

from .config import UnsupportedConfigError, check_convertible
from .state_dict import MappingError, from_hf_state_dict, to_hf_state_dict

__all__ = [
    "MappingError",
    "UnsupportedConfigError",
    "check_convertible",
    "from_hf_state_dict",
    "to_hf_state_dict",
]
