import importlib.util
from pathlib import Path

import numpy as np
import pytest
from joblib import parallel_config
from numpy.testing import assert_allclose
from sklearn.base import clone
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)

from featcell.counting import ImageFeatures, SegmentationCounter, make_counter

DATA = Path(__file__).parents[1] / ".." / "shared" / "data"


def _cells(count, shape=(96, 96), radius=4, seed=0):
    """A noisy field of ``count`` separated bright disks on a jittered 12-pixel grid."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.mgrid[10 : shape[0] - 8 : 12, 10 : shape[1] - 8 : 12], -1).reshape(-1, 2)
    centres = grid[rng.choice(len(grid), count, replace=False)] + rng.integers(-1, 2, (count, 2))
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = np.full(shape, 20.0)
    for cy, cx in centres:
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = 200.0
    return (image + rng.normal(0, 4, shape)).clip(0, 255).astype(np.uint8)


COUNTS = np.arange(1, 31)
IMAGES = [_cells(int(k), seed=int(k)) for k in COUNTS]


def test_segmentation_counter_counts_separated_disks_exactly():
    counter = SegmentationCounter(calibrate=False).fit(IMAGES, COUNTS)
    assert_allclose(counter.predict(IMAGES), COUNTS)
    assert (counter.coef_, counter.intercept_) == (1.0, 0.0)


def test_segmentation_counter_calibration_corrects_a_bias():
    # the truth is twice the number of disks: the fitted line learns the factor
    doubled = 2 * COUNTS
    counter = SegmentationCounter().fit(IMAGES, doubled)
    assert_allclose(counter.coef_, 2.0, atol=1e-6)
    assert_allclose(counter.predict(IMAGES[:3]), doubled[:3], atol=1e-6)


def test_area_count_splits_clumps():
    yy, xx = np.mgrid[:64, :64]
    image = np.zeros((64, 64))
    for cy, cx in [(15, 15), (45, 45), (15, 40), (15, 46)]:  # the last two overlap
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= 16] = 1.0
    plain = SegmentationCounter(calibrate=False, min_distance=20).fit([image], [4])
    by_area = clone(plain).set_params(count_by="area").fit([image], [4])
    assert plain.predict([image])[0] == 3
    assert by_area.predict([image])[0] == 4


@pytest.mark.parametrize("head", ["lr", "rf"])
def test_regression_counter_learns(head):
    train, test = slice(0, 30, 2), slice(1, 30, 2)
    counter = make_counter("regression", head=head)
    counter.fit(IMAGES[train], COUNTS[train])
    error = np.abs(counter.predict(IMAGES[test]) - COUNTS[test]).mean()
    baseline = np.abs(COUNTS[train].mean() - COUNTS[test]).mean()
    assert error < 0.3 * baseline


def test_image_features_names_sizes_and_families():
    images = [IMAGES[0], np.zeros((30, 50)), IMAGES[5][:40, :50]]
    features = ImageFeatures(n_jobs=2)
    with parallel_config(backend="threading"):  # no process start-up in a unit test
        table = features.fit_transform(images)
    names = features.get_feature_names_out()
    assert table.shape == (3, len(names)) and np.isfinite(table).all()
    assert len(set(names)) == len(names)
    sub = ImageFeatures(families=["log", "tophat"], sigmas=[1.5], background_sizes=[9])
    assert sub.get_feature_names_out()[0] == "Image_LoG_Sum_s1p5"
    assert sub.fit_transform(images).shape == (3, len(sub.get_feature_names_out()))
    # a count-like column: the number of LoG peaks grows with the number of disks
    peaks = ImageFeatures(families=["log"], sigmas=[3], thresholds=[0.1]).fit_transform(IMAGES)
    assert_allclose(peaks[:, 2], COUNTS)


def test_pandas_output():
    frame = ImageFeatures(families=["intensity"]).set_output(transform="pandas")
    table = frame.fit_transform(IMAGES[:2])
    assert list(table.columns[:2]) == ["Image_Intensity_Mean", "Image_Intensity_Std"]


def test_paths_and_colour_images(tmp_path):
    import tifffile
    from skimage.io import imsave

    rgb = np.zeros((96, 96, 3), dtype=np.uint8)
    rgb[..., 2] = IMAGES[4]
    imsave(tmp_path / "a.png", rgb, check_contrast=False)
    tifffile.imwrite(tmp_path / "b.tif", IMAGES[6])
    counter = SegmentationCounter(channel=2, calibrate=False).fit([rgb], [5])
    assert counter.predict([tmp_path / "a.png"])[0] == 5
    grey = SegmentationCounter(calibrate=False).fit([IMAGES[0]], [1])
    assert grey.predict([str(tmp_path / "b.tif")])[0] == 7


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: SegmentationCounter().fit("a.png", [1]), TypeError, "single path"),
        (lambda: SegmentationCounter().fit(IMAGES[0], [1]), ValueError, "single image"),
        (lambda: SegmentationCounter().fit([], []), ValueError, "images is empty"),
        (lambda: SegmentationCounter().fit(IMAGES[:2], [1]), ValueError, "counts has shape"),
        (lambda: SegmentationCounter().fit(IMAGES[:1], [np.nan]), ValueError, "NaN"),
        (lambda: SegmentationCounter(count_by="x").fit(IMAGES[:1], [1]), ValueError, "count_by"),
        (lambda: ImageFeatures(families=["hog"]).fit(IMAGES), ValueError, "families"),
        (lambda: ImageFeatures(sigmas=2).fit(IMAGES), ValueError, "sigmas=2"),
        (lambda: ImageFeatures().fit_transform([np.zeros((4, 4, 4, 4))]), ValueError, "3-D"),
        (lambda: make_counter("densities"), ValueError, "method='densities'"),
        (lambda: make_counter("regression", head="knn"), ValueError, "head 'knn'"),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("estimator", [ImageFeatures(), SegmentationCounter()])
def test_api_checks(estimator):
    name = type(estimator).__name__
    check_no_attributes_set_in_init(name, estimator)
    check_parameters_default_constructible(name, estimator)
    check_get_params_invariance(name, estimator)
    check_set_params(name, estimator)


def test_make_counter_routes_parameters():
    counter = make_counter("segmentation", channel=2, count_by="area")
    assert isinstance(counter, SegmentationCounter) and counter.count_by == "area"
    assert type(make_counter().steps[-1][1]).__name__ == "RidgeCV"
    pipeline = make_counter("regression", head="xgb", families=["tophat"], n_jobs=2)
    assert pipeline.steps[0][1].families == ["tophat"]
    assert type(pipeline.steps[-1][1]).__name__ == "XGBRegressor"


@pytest.mark.skipif(importlib.util.find_spec("featcell.cnn") is None, reason="no featcell.cnn")
def test_cnn_counter_builds():
    from featcell.cnn import CNNEmbedding

    assert isinstance(make_counter("cnn", head="lr").steps[0][1], CNNEmbedding)


@pytest.mark.skipif(not (DATA / "counting").is_dir(), reason="../shared/data is absent")
def test_segmentation_counts_follow_bbbc005_truth():
    import pandas as pd

    root = DATA / "counting" / "bbbc005"
    table = pd.read_csv(root / "counts.csv")
    table = table[table["blur"] == "F1"].iloc[::24]
    paths = [root / "images" / name for name in table["image"]]
    found = SegmentationCounter(calibrate=False).fit(paths, table["count"]).predict(paths)
    assert np.corrcoef(found, table["count"])[0, 1] > 0.95
