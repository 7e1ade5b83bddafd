# Copyright (c) the mask2former authors.
"""Close-match ("did you mean") suggestions for names given by the user (config keys, dataset
names, registry keys), with the similarity ratio of the standard library's ``difflib``."""

import difflib
from typing import Iterable, List

__all__ = ["UnknownNameError", "close_matches", "did_you_mean"]


class UnknownNameError(KeyError):
    """A KeyError for an unknown name whose message prints as it is (``KeyError`` quotes it)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def close_matches(
    name: str, candidates: Iterable[str], limit: int = 5, cutoff: float = 0.6
) -> List[str]:
    """The candidates most similar to ``name`` (best first, at most ``limit``), case-insensitive;
    candidates that contain ``name`` or that ``name`` contains come first (e.g. a prefix typed
    without its suffix)."""
    candidates = sorted(set(candidates))
    lowered = {c.lower(): c for c in candidates}
    key = name.lower()
    similar = difflib.get_close_matches(key, list(lowered), n=limit, cutoff=cutoff)
    nested = [c for c in lowered if c != key and len(key) >= 3 and (key in c or c in key)]
    ordered = similar + sorted(c for c in nested if c not in similar)
    return [lowered[c] for c in ordered[:limit]]


def did_you_mean(name: str, candidates: Iterable[str], limit: int = 5) -> str:
    """``"; did you mean A, B?"`` for the close matches of ``name``, or ``""`` when none."""
    matches = close_matches(name, candidates, limit)
    return f"; did you mean {', '.join(matches)}?" if matches else ""
