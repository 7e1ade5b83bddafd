# Keep freed memory in the process for CPU inference and training (glibc malloc).
#
# PyTorch's CPU tensors come from malloc. glibc serves blocks above ``M_MMAP_THRESHOLD`` (at most
# 32 MB with its dynamic threshold) with a fresh mmap and gives them back to the kernel on free,
# so every large tensor of an inference call (the [Q, H, W] mask logits at the output size are
# 350 MB for 100 queries at 800x1088) is page-faulted in again, one 4 KB page at a time, and the
# kernel zeroes each page. Measured on an AMD EPYC, 2 threads, R50 at 800x1088: 0.8 million page
# faults and 1.5 s of system time per call, 2.96 s wall; with the thresholds below, no page
# faults after the first call and 1.98 s wall, the same results (tools/benchmarks/
# bench_inference.py reports both). The cost: the process keeps its peak memory instead of
# returning freed blocks to the system.
import ctypes
import ctypes.util
import logging
import threading

__all__ = ["keep_freed_cpu_memory"]

logger = logging.getLogger(__name__)

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Blocks up to this size come from (and go back to) the heap; the largest a C int holds.
_THRESHOLD = 2**31 - 1

_lock = threading.Lock()
_state = {"applied": None}  # None: not tried yet; then True (applied) or False (not glibc)


def keep_freed_cpu_memory() -> bool:
    """Make glibc's malloc keep freed blocks up to 2 GiB for reuse (``mallopt``:
    ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD``) instead of unmapping them, for the rest of the
    process. Idempotent; logs once.

    Returns:
        True if the setting is in effect; False where the C library is not glibc (musl, macOS,
        Windows), which is left unchanged.
    """
    with _lock:
        if _state["applied"] is None:
            _state["applied"] = _apply()
        return bool(_state["applied"])


def _apply() -> bool:
    path = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(path)
        if not hasattr(libc, "gnu_get_libc_version"):  # glibc only
            raise AttributeError("gnu_get_libc_version")
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        logger.info("C library %r is not glibc: CPU memory allocation left as it is", path)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    applied = bool(mallopt(_M_MMAP_THRESHOLD, _THRESHOLD))
    applied = applied and bool(mallopt(_M_TRIM_THRESHOLD, _THRESHOLD))
    if applied:
        logger.info(
            "CPU: glibc malloc keeps freed blocks up to 2 GiB for reuse instead of returning them "
            "to the system (no page faults on every call or step; the process keeps its peak "
            "memory). TEST.CPU_KEEP_FREED_MEMORY (inference) and SOLVER.CPU_KEEP_FREED_MEMORY "
            "(training) False turn this off."
        )
    else:
        logger.warning("glibc mallopt refused the thresholds: CPU memory allocation unchanged")
    return applied
