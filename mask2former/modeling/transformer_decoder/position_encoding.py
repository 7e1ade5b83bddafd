"""The official import path of :class:`PositionEmbeddingSine`, whose one definition is in
:mod:`mask2former.modeling.layers.position_encoding`."""

from ..layers.position_encoding import PositionEmbeddingSine

__all__ = ["PositionEmbeddingSine"]
