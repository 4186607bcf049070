"""Every texture kernel against a plain, obviously correct reference on small inputs."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import ndimage as ndi
from skimage.morphology import disk, erosion, reconstruction

from featcell.features._kernels import cooccurrence, gabor, lbp
from featcell.features._kernels.reconstruction import bilinear_weights, erode_and_reconstruct
from featcell.features.gabor import _factors
from featcell.features.haralick import DIRECTIONS
from featcell.features.lbp import _taps


def _cells(masks):
    """Mask pixels (cell after cell, row-major) of crops given by their masks."""
    rows, cols, counts = [], [], []
    for mask in masks:
        r, c = np.nonzero(mask)
        rows.append(r)
        cols.append(c)
        counts.append(r.size)
    shapes = np.array([m.shape for m in masks], np.intp)
    sizes = shapes.prod(axis=1)
    return (
        np.cumsum(sizes) - sizes,
        shapes,
        np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        np.concatenate(rows).astype(np.int32),
        np.concatenate(cols).astype(np.int32),
    )


RNG = np.random.default_rng(0)
CROPS = [RNG.random((9, 11)), RNG.random((6, 5)), np.round(RNG.random((12, 8)) * 3) / 3]
MASKS = [RNG.random(c.shape) < 0.7 for c in CROPS]
MASKS[1][:] = True


@pytest.mark.parametrize("trial", range(8))
def test_erosion_and_reconstruction_equal_scikit_image(trial):
    rng = np.random.default_rng(trial)
    mask = rng.random(rng.integers(1, 25, 2))
    if trial % 2:
        mask = np.round(mask * 3)  # plateaus and ties
    image = mask - rng.random(mask.shape) * (trial % 4) + (trial == 6)  # above mask in places
    seed, rebuilt = erode_and_reconstruct(image, mask)
    assert_array_equal(seed, erosion(image, disk(1)))
    expected = reconstruction(np.minimum(seed, mask), mask, footprint=disk(1))
    assert_array_equal(rebuilt, expected)


def test_bilinear_weights_give_the_means_of_map_coordinates():
    image = RNG.random((5, 7))  # an image of (18, 26) subsampled: its coordinates times scale
    scale = np.array([4 / 17, 6 / 25])
    rows, cols = RNG.integers(0, 18, 40), RNG.integers(0, 26, 40)  # some past the last row/column
    origins = np.array([[0, 0], [3, 2], [1, 4]], np.intp)  # the crops' corners
    cell_start = np.array([0, 15, 15, 40], np.int64)  # the middle cell has no points
    shape = np.array(image.shape)
    weight, index, start = bilinear_weights(cell_start, rows, cols, origins, scale, shape)
    cell = np.repeat(np.arange(3), np.diff(start))
    ours = np.bincount(cell, weight * image.ravel()[index], 3)
    owner = np.repeat(np.arange(3), np.diff(cell_start))
    y, x = (rows + origins[owner, 0]) * scale[0], (cols + origins[owner, 1]) * scale[1]
    sampled = ndi.map_coordinates(image, (y, x), order=1)  # 0 beyond the image
    assert_allclose(ours, [sampled[:15].sum(), 0.0, sampled[15:].sum()], rtol=1e-12)


def _brute_force_cooccurrence(levels, mask, dy, dx):
    counts = {}
    h, w = levels.shape
    for y in range(h):
        for x in range(w):
            y2, x2 = y + dy, x + dx
            if 0 <= y2 < h and 0 <= x2 < w and mask[y, x] and mask[y2, x2]:
                a, b = int(levels[y, x]), int(levels[y2, x2])
                if a and b:
                    key = (min(a, b), max(a, b))
                    counts[key] = counts.get(key, 0) + 1
    return counts


@pytest.mark.parametrize("scale", [1, 2])
def test_cooccurrence_matrices_count_every_pixel_pair(scale):
    levels = [(c * 6).astype(np.uint8) for c in CROPS]  # levels 0 .. 5, zeros ignored
    _, shapes, cell_start, rows, cols = _cells(MASKS)
    pixel_levels = np.concatenate([lv[m] for lv, m in zip(levels, MASKS)])
    offsets = np.array(DIRECTIONS, np.int64) * scale
    start, low, high, count = cooccurrence.cooccurrence_matrices(
        pixel_levels, cell_start, rows, cols, shapes, offsets
    )
    for i, (lv, mask) in enumerate(zip(levels, MASKS)):
        for d, (dy, dx) in enumerate(offsets):
            g = i * len(offsets) + d
            ours = {
                (int(a), int(b)): int(n)
                for a, b, n in zip(
                    low[start[g] : start[g + 1]],
                    high[start[g] : start[g + 1]],
                    count[start[g] : start[g + 1]],
                )
            }
            assert ours == _brute_force_cooccurrence(lv, mask, dy, dx)


def test_haralick_features_equal_mahotas():
    mahotas = pytest.importorskip("mahotas")
    levels = [np.where(m, 1 + (c * 40).astype(np.uint8), 0) for c, m in zip(CROPS, MASKS)]
    _, shapes, cell_start, rows, cols = _cells(MASKS)
    pixel_levels = np.concatenate([lv[m] for lv, m in zip(levels, MASKS)]).astype(np.uint8)
    matrices = cooccurrence.cooccurrence_matrices(
        pixel_levels, cell_start, rows, cols, shapes, np.array(DIRECTIONS, np.int64)
    )
    qmin = np.array([lv[m].min() for lv, m in zip(levels, MASKS)], np.int64)
    qmax = np.array([lv.max() for lv in levels], np.int64)
    ours = cooccurrence.haralick_features(*matrices, qmin, qmax, 4).reshape(3, 4, 13)
    for i, lv in enumerate(levels):
        expected = mahotas.features.haralick(lv, ignore_zeros=True)
        assert_allclose(ours[i], expected, rtol=1e-9, atol=1e-7)  # InfoMeas2: HXY2 = 2 HX


def _cellprofiler3_gabor(image, mask, scale, n_angles):
    """CellProfiler 3's MeasureTexture Gabor score of one object, with numpy arrays."""
    values = image[mask]
    span = values.max() - values.min() or 1.0
    norm = (values - values.min()) / span
    norm -= norm.mean()
    i, j = (c - c.mean() for c in np.nonzero(mask))
    sigma = np.sqrt(mask.sum() / np.pi) / 3
    envelope = 1000 / (2 * np.pi * sigma**2) * np.exp(-(i**2 + j**2) / (2 * sigma**2))
    best = 0.0
    for k in range(n_angles):
        theta = np.pi * k / n_angles
        phase = 2 * np.pi / scale * (i * np.cos(theta) + j * np.sin(theta))
        g_cos, g_sin = envelope * np.cos(phase), envelope * np.sin(phase)
        real = ((g_cos - g_cos.mean()) * norm).sum()
        score = np.hypot(real, ((g_sin - g_sin.mean()) * norm).sum())
        best = max(best, score)
    return best


def test_cellprofiler_gabor_equals_a_port_of_cellprofiler():
    _, _, cell_start, rows, cols = _cells(MASKS)
    values = np.concatenate([c[m] for c, m in zip(CROPS, MASKS)])
    ours = gabor.cellprofiler_gabor(values, cell_start, rows, cols, 3, 4)
    expected = [_cellprofiler3_gabor(c, m, 3, 4) for c, m in zip(CROPS, MASKS)]
    assert_allclose(ours, expected, rtol=1e-12)


@pytest.mark.parametrize("theta", [0, np.pi / 4, np.pi / 2])
def test_gabor_energy_equals_scikit_image_on_each_crop(theta):
    from skimage.filters import gabor as skimage_gabor

    crop_start, shapes, cell_start, rows, cols = _cells(MASKS)
    crops = np.concatenate([c.ravel() for c in CROPS])
    factors = _factors(1 / 3, theta)[None]
    energy = gabor.gabor_energy(  # theta in row 0, its mirror pi - theta in row 1
        crops, crop_start, shapes, cell_start, rows, cols, factors, np.array([0]), np.array([1])
    )
    for row, angle in zip(energy, (theta, np.pi - theta)):
        expected = [np.hypot(*skimage_gabor(c, 1 / 3, angle))[m] for c, m in zip(CROPS, MASKS)]
        assert_allclose(row, np.concatenate(expected), rtol=1e-9)


@pytest.mark.parametrize(("points", "radius"), [(8, 1), (12, 1.5)])
def test_uniform_lbp_equals_scikit_image_on_each_crop(points, radius):
    from skimage.feature import local_binary_pattern

    crop_start, shapes, cell_start, rows, cols = _cells(MASKS[:2])
    crops = np.concatenate([c.ravel() for c in CROPS[:2]])  # no ties
    codes = lbp.uniform_lbp(
        crops, crop_start, shapes, cell_start, rows, cols, *_taps(points, radius)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # float images
        expected = [
            local_binary_pattern(c, points, radius, method="uniform")[m]
            for c, m in zip(CROPS[:2], MASKS[:2])
        ]
    assert_array_equal(codes, np.concatenate(expected))
