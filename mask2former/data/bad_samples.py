# Copyright (c) the mask2former authors.
"""Bad training samples: skipped, counted, and reported in the log and in ``metrics.json``.

The policy (see also the "Bad data" section of ``datasets/README.md``): a training mapper skips a
sample only when the fault is in that sample alone and dropping it keeps every other label
right: an image (or label / panoptic PNG, video frame) that is missing or cannot be decoded,
an image whose only objects are crowd regions (its target would say "nothing here" on pixels
full of objects), and a panoptic or semantic image with no labelled pixel (VOID / ignore means
"not annotated", so there is nothing to learn). Objects with no area (degenerate polygons) are
dropped from their image and counted. Everything else that says the annotation disagrees with its
image or with the dataset's metadata (sizes, category ids, label values, panoptic ids, box-only
objects) is an error naming the file: it comes from how the dataset was built, and training on
would hide it. In inference mode nothing is skipped: every fault is an error naming the file.

How a skip travels (data-loader workers are other processes, without the trainer's
``EventStorage``): the mapper, in whatever process it runs, catches a
:class:`SkippableSampleError`, returns None (detectron2's ``MapDataset`` then maps another
sample), logs the event with its file and keeps it; the next sample it returns carries the
pending events under :data:`BAD_SAMPLES_KEY`. In the training process,
:class:`SkippedSampleCounter` (wrapping the train loader) removes that key from every batch, logs
the running totals when they change and puts them as scalars ``data/skipped_<reason>``
(samples) and ``data/dropped_<reason>`` (objects) into detectron2's current ``EventStorage``,
which the trainer's ``JSONWriter`` writes to ``metrics.json``. A mapper that skips
:data:`MAX_CONSECUTIVE_SKIPS` samples in a row raises instead: the dataset as a whole is broken
(e.g. a wrong root), and skipping on would never end; so does a training set whose every sample
was skipped.
"""

import logging
from collections import Counter
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from detectron2.utils.events import get_event_storage

__all__ = [
    "BAD_SAMPLES_KEY",
    "MAX_CONSECUTIVE_SKIPS",
    "CrowdOnlyError",
    "MissingFileError",
    "NoAnnotationsError",
    "SkippableSampleError",
    "SkippedSampleCounter",
    "UnreadableFileError",
    "map_or_skip",
    "note_dropped_objects",
]

logger = logging.getLogger(__name__)

# Key of the mapped dict that carries the skip / drop events since the previous returned sample.
BAD_SAMPLES_KEY = "bad_samples"
# A mapper that skips this many samples in a row raises (the dataset as a whole is broken).
MAX_CONSECUTIVE_SKIPS = 10

# An event: (kind "skipped" or "dropped", reason, count, file name, message).
Event = Tuple[str, str, int, str, str]


class SkippableSampleError(Exception):
    """A sample that training skips (and counts) and inference reports as an error.

    Subclasses set :attr:`reason`, the suffix of the ``data/skipped_<reason>`` scalar.
    Constructed with the message alone (as torch's data loader re-raises worker errors) or with
    the file at fault.
    """

    reason = "bad_sample"

    def __init__(self, message: str, file_name: Optional[str] = None) -> None:
        super().__init__(message)
        self.file_name = file_name

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __reduce__(self) -> Tuple[Any, ...]:
        return type(self), (str(self), self.file_name)


class MissingFileError(SkippableSampleError, FileNotFoundError):
    """An image, label map, panoptic PNG or video frame that does not exist."""

    reason = "missing_file"


class UnreadableFileError(SkippableSampleError, OSError):
    """A file that exists but cannot be decoded: corrupt, truncated, or an unsupported mode."""

    reason = "unreadable_file"


class CrowdOnlyError(SkippableSampleError, ValueError):
    """A training image whose every object is a crowd region: its target would be empty ("no
    object" everywhere) although it is full of objects, so training skips it (detectron2 drops
    such images at load time for datasets with ``annotations`` when
    ``DATALOADER.FILTER_EMPTY_ANNOTATIONS``; this also covers panoptic datasets)."""

    reason = "crowd_only"


class NoAnnotationsError(SkippableSampleError, ValueError):
    """A panoptic or semantic training image without a labelled pixel (no segment, or every
    label the ignore value): VOID / ignore means "not annotated", not "no object", so there is
    nothing to learn from it. (Instance images without objects are negatives and are kept.)"""

    reason = "no_annotations"


class _PendingEvents:
    """Events of this process not yet attached to a returned sample, and the current run of
    consecutive skips."""

    def __init__(self) -> None:
        self.events: List[Event] = []
        self.consecutive_skips = 0

    def skip(self, error: SkippableSampleError, file_name: str) -> None:
        self.consecutive_skips += 1
        self.events.append(("skipped", error.reason, 1, file_name, str(error)))
        logger.warning(f"Skipped training sample {file_name} ({error.reason}): {error}")
        if self.consecutive_skips >= MAX_CONSECUTIVE_SKIPS:
            files = sorted({event[3] for event in self.events if event[0] == "skipped"})
            self.events, self.consecutive_skips = [], 0
            raise RuntimeError(
                f"{MAX_CONSECUTIVE_SKIPS} training samples in a row were skipped as bad; the "
                f"dataset looks broken as a whole (check $DETECTRON2_DATASETS and the dataset's "
                f"paths). Last error: {error}. Skipped files: {files[:MAX_CONSECUTIVE_SKIPS]}"
            ) from error

    def attach(self, mapped: Dict[str, Any]) -> Dict[str, Any]:
        self.consecutive_skips = 0
        if self.events:
            mapped[BAD_SAMPLES_KEY] = self.events
            self.events = []
        return mapped


# One per process: each data-loader worker has its own copy.
_PENDING = _PendingEvents()


def note_dropped_objects(reason: str, count: int, file_name: str, message: str) -> None:
    """Record that ``count`` objects of ``file_name`` were dropped (counted in
    ``data/dropped_<reason>``; ``message`` says why)."""
    if count:
        _PENDING.events.append(("dropped", reason, count, file_name, message))
        logger.warning(f"Dropped {count} object(s) of {file_name} ({reason}): {message}")


def map_or_skip(
    map_sample: Callable[[Dict[str, Any]], Dict[str, Any]], dataset_dict: Dict[str, Any]
) -> Optional[Dict[str, Any]]:
    """``map_sample(dataset_dict)`` for training: None when it raises a
    :class:`SkippableSampleError` (the event is kept and attached to the next returned sample);
    other errors propagate."""
    try:
        mapped = map_sample(dataset_dict)
    except SkippableSampleError as error:
        # The sample is named by its image (a video by its faulty frame); the message names the
        # file at fault (e.g. a label map).
        sample = dataset_dict.get("file_name") or error.file_name or str(dataset_dict)
        _PENDING.skip(error, str(sample))
        return None
    return _PENDING.attach(mapped)


def _current_storage() -> Any:
    """detectron2's current ``EventStorage``, or None outside a training loop."""
    try:
        return get_event_storage()
    except AssertionError:  # get_event_storage asserts that a storage exists
        return None


class SkippedSampleCounter:
    """Wraps the train loader (an iterable of batches, each a list of mapped dicts): removes
    :data:`BAD_SAMPLES_KEY` from the dicts and keeps running totals, logged when they change and
    put at each iteration (once there is one) as ``data/skipped_<reason>`` and
    ``data/dropped_<reason>`` scalars in detectron2's current ``EventStorage``. (Each event is
    logged with its file by the process that mapped the sample.)

    Attributes:
        totals: ``{"skipped_<reason>" or "dropped_<reason>": count}`` so far.
    Other attributes are those of the wrapped loader.
    """

    def __init__(self, loader: Iterable[List[Dict[str, Any]]]) -> None:
        self.loader = loader
        self.totals: Counter = Counter()

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes not found on the wrapper: those of the wrapped loader.
        if name == "loader":
            raise AttributeError(name)
        return getattr(self.loader, name)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[List[Dict[str, Any]]]:
        for batch in _no_exhaustion(self.loader):
            events = [
                event
                for sample in batch
                if isinstance(sample, dict)
                for event in sample.pop(BAD_SAMPLES_KEY, ())
            ]
            for kind, reason, count, _, _ in events:
                self.totals[f"{kind}_{reason}"] += count
            if events:  # each event was logged with its file where it happened
                logger.info(f"Bad training data so far: {dict(sorted(self.totals.items()))}")
            storage = _current_storage()
            if storage is not None:
                for name, count in sorted(self.totals.items()):
                    storage.put_scalar(f"data/{name}", count, smoothing_hint=False)
            yield batch


def _no_exhaustion(loader: Iterable[List[Dict[str, Any]]]) -> Iterator[List[Dict[str, Any]]]:
    """The batches of ``loader``; when detectron2's ``MapDataset`` has tried every sample and
    all were skipped (random.sample on its empty list of candidates), a RuntimeError that says
    so."""
    try:
        yield from loader
    except ValueError as error:
        if "Sample larger than population" not in str(error):
            raise
        raise RuntimeError(
            "Every training sample was skipped as bad (detectron2's MapDataset ran out of "
            "samples to try): see the warnings naming the files, and the 'Bad data' section of "
            "datasets/README.md"
        ) from error
