"""The lookup shared by the model's registries (pixel decoders, transformer decoders, criteria):
one error message for an unknown name, one check of the interface a registered object must have.
"""

from typing import Any

from detectron2.utils.registry import Registry

__all__ = ["check_method", "lookup"]


def lookup(registry: Registry, name: str, config_key: str, kind: str) -> Any:
    """The object registered as ``name``.

    Args:
        registry: where to look.
        name: the registered name (the value of ``config_key``).
        config_key: the config key that holds ``name``, for the error message.
        kind: what the registry holds, plural ("pixel decoders"), for the error message.
    Raises:
        KeyError: naming ``config_key``, ``name`` and the registered names.
    """
    if name not in registry:
        registered = sorted(k for k, _ in registry)
        raise KeyError(f"Unknown {config_key} {name!r}; registered {kind}: {registered}")
    return registry.get(name)


def check_method(obj: Any, method: str, name: str, kind: str) -> None:
    """Raise a TypeError naming ``name`` unless ``obj`` (a class or an instance) has ``method``.

    Args:
        obj: a registered class, or the module it built.
        method: the method the model calls, e.g. "forward_features".
        name: the registered name, for the error message.
        kind: what ``obj`` is, singular ("pixel decoder"), for the error message.
    """
    if not callable(getattr(obj, method, None)):
        raise TypeError(f"{kind} {name!r} ({obj!r}) must implement {method}()")
