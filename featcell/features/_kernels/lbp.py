"""Local binary patterns (Ojala et al.), scikit-image's rotation-invariant uniform codes."""

import numpy as np

from . import kernel


@kernel
def uniform_lbp(crops, crop_start, shapes, cell_start, rows, cols, tap_dy, tap_dx, tap_weight):
    """Rotation-invariant uniform LBP code of every mask pixel, on its own crop.

    ``skimage.feature.local_binary_pattern(crop, P, R, method="uniform")``
    (``_local_binary_pattern`` in scikit-image's ``_texture.pyx``): neighbour
    ``p`` of ``P`` is interpolated bilinearly from up to four pixels (0 off
    the crop), its bit is set when it is not below the centre, and a pattern
    with at most two bit changes along ``p = 0 .. P - 1`` gets its number of
    set bits, any other ``P + 1``. The comparison is ``sum(w_k (v_k -
    centre)) >= 0``, exact for a neighbour that ties with the centre
    wherever the pixel lies. Crops and mask pixels are laid out as in
    :func:`featcell.features._kernels.gabor.gabor_energy`; neighbour ``k``
    is interpolated from the pixels at ``(tap_dy[k], tap_dx[k])`` with
    weights ``tap_weight[k]`` (P, 4). Returns the (M,) codes.
    """
    n_points = tap_dy.shape[0]
    codes = np.empty(rows.size, np.uint8)
    for cell in range(cell_start.size - 1):
        height, width, start = shapes[cell, 0], shapes[cell, 1], crop_start[cell]
        for p in range(cell_start[cell], cell_start[cell + 1]):
            centre = np.float64(crops[start + rows[p] * width + cols[p]])
            ones = changes = 0
            previous = False
            for k in range(n_points):
                diff = 0.0
                for t in range(4):
                    w = tap_weight[k, t]
                    if w == 0.0:
                        continue
                    y, x = rows[p] + tap_dy[k, t], cols[p] + tap_dx[k, t]
                    inside = 0 <= y < height and 0 <= x < width
                    term = (crops[start + y * width + x] if inside else 0.0) - centre
                    diff += term if w == 1.0 else term * w
                bit = diff >= 0.0
                ones += bit
                if k > 0 and bit != previous:
                    changes += 1
                previous = bit
            codes[p] = ones if changes <= 2 else n_points + 1
    return codes
