"""Gabor texture: CellProfiler's per-cell Gabor score and Gabor filter energies."""

from __future__ import annotations

import numpy as np

from ._kernels import gabor as kernels

__all__ = ["cellprofiler_gabor", "gabor_energy", "gabor_energy_names", "gabor_names"]


def gabor_names(channel, scales):
    """Column names of CellProfiler's Gabor score, ``Texture_Gabor_<Channel>_<scale>``."""
    return [f"Texture_Gabor_{channel}_{scale}" for scale in scales]


def cellprofiler_gabor(pixels, values, channel, scales, n_angles=4):
    """CellProfiler's Gabor score of every cell (:class:`CellPixels` ``pixels``, intensities
    ``values``) per wavelength in ``scales``: the columns of :func:`gabor_names`.

    See :func:`featcell.features._kernels.gabor.cellprofiler_gabor`.
    """
    scores = [
        kernels.cellprofiler_gabor(values, pixels.bounds, pixels.row, pixels.col, scale, n_angles)
        for scale in scales
    ]
    return dict(zip(gabor_names(channel, scales), scores))


def _factors(frequency, theta):
    """1-D factors of ``skimage.filters.gabor_kernel(frequency, theta)`` (bandwidth 1).

    With equal sigmas the kernel is ``outer(ky, kx)``. Returns the rows
    ``kx.real, kx.imag, ky.real, ky.imag``; an imaginary part that is zero but
    for rounding (below 1e-12 of the real part: ``cos(pi / 2)`` is 6e-17) is zeroed.
    """
    # the Gaussian's sigma in scikit-image for bandwidth b = 1: (2**b + 1) / (2**b - 1) = 3
    sigma = np.sqrt(np.log(2) / 2) / np.pi * 3.0 / frequency
    ct, st = np.cos(theta), np.sin(theta)
    half = int(np.ceil(max(abs(3 * sigma * ct), abs(3 * sigma * st), 1)))
    t = np.arange(-half, half + 1, dtype=np.float64)
    gauss = np.exp(-0.5 * t * t / sigma**2)
    kx = gauss * np.exp(1j * 2 * np.pi * frequency * t * ct) / (2 * np.pi * sigma**2)
    ky = gauss * np.exp(1j * 2 * np.pi * frequency * t * st)
    factors = np.array([kx.real, kx.imag, ky.real, ky.imag])
    for k in (1, 3):
        if np.abs(factors[k]).max() <= 1e-12 * np.abs(factors[k - 1]).max():
            factors[k] = 0.0
    return factors


def gabor_energy_names(channel, scales, n_angles):
    """Column names, ``Texture_GaborEnergy_<Channel>_<scale>_<orientation>``."""
    return [
        f"Texture_GaborEnergy_{channel}_{scale}_{a:02d}"
        for scale in scales
        for a in range(n_angles)
    ]


def gabor_energy(pixels, channel_index, channel, scales, n_angles=4):
    """Mean Gabor filter energy of every cell, per scale and orientation.

    The modulus of ``skimage.filters.gabor(crop, 1 / scale, pi * a /
    n_angles)`` (``mode="reflect"``) averaged over the cell's pixels, on the
    cell's crop: the whole image's response wherever the kernel's half-width
    (about ``1.7 * scale`` pixels) stays within the crop. Returns the columns
    of :func:`gabor_energy_names` for channel ``channel_index``.
    """
    crops = pixels.flat.values[channel_index]  # (float32: the kernel reads it into float64)
    # angle n_angles - a (pi - theta) mirrors angle a: the kernel filters both
    angles = [a for a in range(n_angles) if 2 * a <= n_angles]
    first = np.array(angles, np.intp)
    second = np.array([n_angles - a if 0 < a < n_angles - a else -1 for a in angles], np.intp)
    energies = []  # in the order of gabor_energy_names
    for scale in scales:
        factors = [_factors(1.0 / scale, np.pi * a / n_angles) for a in angles]
        half = factors[0].shape[1] // 2  # theta = 0 has the widest kernel
        factors = np.array([np.pad(f, ((0, 0), (half - f.shape[1] // 2,) * 2)) for f in factors])
        energy = kernels.gabor_energy(
            crops, pixels.crop_starts, pixels.shapes, pixels.bounds, pixels.row, pixels.col,
            factors, first, second,
        )  # fmt: skip
        energies += [pixels.mean(per_angle) for per_angle in energy]
    return dict(zip(gabor_energy_names(channel, scales, n_angles), energies))
