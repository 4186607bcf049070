"""Compiled per-cell kernels: one plain loop per step of CellProfiler's algorithm.

Each module here holds the ``@kernel`` loops of one step, and each kernel's
docstring names the CellProfiler or centrosome function it reproduces:

* ``distance``: the Euclidean distance transform (radii, distance to the edge);
* ``geodesic``: the distance from an object's centre inside it (centrosome ``propagate``)
  and the bins of the radial distribution;
* ``intensity_sums`` and ``order_stats``: MeasureObjectIntensity's per-object sums,
  quartiles, median and MAD;
* ``enclosing_circle`` and ``feret``: the minimum enclosing circle of the Zernike
  features and the Feret diameters (centrosome ``minimum_enclosing_circle``,
  ``feret_diameter``);
* ``outline``: the object outlines of the edge intensities (centrosome ``outline``);
* ``reconstruction`` and ``cooccurrence``: granularity (erosion and grey reconstruction,
  as ``skimage.morphology``) and Haralick (co-occurrence matrices and their features, as
  mahotas);
* ``gabor`` and ``lbp``: CellProfiler's Gabor score, the Gabor energy and uniform
  local binary patterns (texture);
* ``objects``: the objects of a label image (boxes, windows, centroids) and each
  cell's mask pixels and runs, the layouts every family measures from.

The feature transformers arrange the data; these loops compute. Each kernel is
called with one set of argument types (intp indices, float64 or float32 values),
so it is compiled once.

numba compiles a kernel on its first call and caches the machine code on disk
(next to this file, or in the user cache folder, ``~/.cache/numba``, when the
package folder is read-only), so later processes load it instead of compiling it
again (``benchmarks/cold_start.py`` measures both).
"""

import numba


def kernel(function):
    """Compile ``function`` with numba in nopython mode, cached on disk, GIL released."""
    return numba.njit(cache=True, nogil=True)(function)
