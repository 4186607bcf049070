"""Tuning of glibc's allocator for processes that featcell owns.

Measuring cells allocates and frees arrays of a few hundred kilobytes to tens of
megabytes per image. With glibc's defaults a process returns the top of its heap
to the operating system after each image and faults the same pages in again for
the next one. In fresh joblib workers the two-process speed-up of
:func:`featcell.batch.score_images` fell to about 1.4 (1.8-1.9 with this
tuning; ``benchmarks/batch_speed.py``); in one process, feature extraction
runs 10-20 % faster with it (``benchmarks/feature_speed.py
--keep-freed-memory`` against a run without).

:func:`keep_freed_memory` is called only in processes featcell starts (the
``featcell`` command, and the loky or multiprocessing workers that joblib starts
for featcell's own parallel loops), never at import and never in workers that
someone else runs: in a user's own interpreter, or a Dask or Ray worker serving
other work, it would change memory behaviour behind their back. Users get the
same effect in their scripts and clusters with the environment variables
``MALLOC_TRIM_THRESHOLD_=268435456 MALLOC_MMAP_THRESHOLD_=33554432``.
"""

from __future__ import annotations

import ctypes
import os
import sys
from functools import lru_cache

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (glibc's malloc.h)
TRIM_THRESHOLD = 256 << 20  # give freed memory back only above 256 MiB
MMAP_THRESHOLD = 32 << 20  # serve arrays below 32 MiB from the (reused) heap


@lru_cache(maxsize=1)
def keep_freed_memory():
    """Let glibc keep freed memory for the next image instead of returning it to the OS.

    Once per process; a no-op off Linux/glibc. Memory stays bounded by the
    largest image's working set plus 256 MiB.

    Returns
    -------
    bool
        Whether the allocator was tuned.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):  # not glibc (e.g. musl): nothing to tune
        return False
    return bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    )


# joblib backends whose worker processes joblib itself starts for the caller
_OWN_WORKER_BACKENDS = ("LokyBackend", "MultiprocessingBackend")


def tuning_token():
    """What the caller passes to its tasks so that :func:`keep_freed_memory_in_worker`
    tunes only workers that joblib starts for featcell.

    Returns
    -------
    int or None
        The caller's process id when joblib's active backend is loky or
        multiprocessing (worker processes started for this interpreter);
        ``None`` for any other backend (Dask, Ray, threads, sequential), whose
        workers featcell did not start.
    """
    from joblib.parallel import get_active_backend

    backend, _ = get_active_backend()
    return os.getpid() if type(backend).__name__ in _OWN_WORKER_BACKENDS else None


def keep_freed_memory_in_worker(token):
    """:func:`keep_freed_memory` in a worker process started for featcell.

    ``token`` comes from :func:`tuning_token` in the caller: ``None`` (a worker
    featcell did not start) and the caller's own process (a sequential run)
    are left alone.
    """
    if token is not None and os.getpid() != token:
        keep_freed_memory()
