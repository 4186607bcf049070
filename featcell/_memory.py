"""Tuning of glibc's allocator for processes that featcell owns.

Measuring cells allocates and frees arrays of a few hundred kilobytes to tens of
megabytes per image. With glibc's defaults a process returns the top of its heap
to the operating system after each image and faults the same pages in again for
the next one. In fresh joblib workers the two-process speed-up of
:func:`featcell.batch.score_images` fell to about 1.4 (1.8-1.9 with this
tuning; ``benchmarks/batch_speed.py``); in one process, feature extraction
runs 10-20 % faster with it (``benchmarks/feature_speed.py
--keep-freed-memory`` against a run without).

:func:`keep_freed_memory` is called only in processes featcell starts or runs
(joblib/Dask workers, the ``featcell`` command), never at import: in a user's
own interpreter it would change memory behaviour behind their back. Users get
the same effect in their scripts with the environment variables
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


def keep_freed_memory_in_worker(caller_pid):
    """:func:`keep_freed_memory` when this code runs in another process than ``caller_pid``
    (a joblib/Dask worker), never in the caller's own process."""
    if caller_pid is not None and os.getpid() != caller_pid:
        keep_freed_memory()
