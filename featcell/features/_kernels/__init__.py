"""Compiled per-cell kernels: one plain loop per step of CellProfiler's algorithm.

Each module here holds the ``@kernel`` loops of one step (for example the grey
reconstruction of granularity, or the geodesic distance of radial distribution),
and each kernel's docstring names the CellProfiler or centrosome function it
reproduces. The feature transformers arrange the data; these loops compute.

numba compiles a kernel on its first call and caches the machine code on disk
(next to this file, or in a user cache folder when the package folder is
read-only), so later processes load it instead of compiling it again.
"""

import numba


def kernel(function):
    """Compile ``function`` with numba in nopython mode, cached on disk, GIL released."""
    return numba.njit(cache=True, nogil=True)(function)
