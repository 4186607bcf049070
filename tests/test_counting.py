import importlib.util
from pathlib import Path

import numpy as np
import pytest
import tifffile
from joblib import parallel_config
from numpy.testing import assert_allclose
from sklearn.base import clone
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)

from featcell import counting
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
        # checked at fit without calibration too (they failed only at predict)
        *[(lambda p=p: SegmentationCounter(**{"calibrate": False, **p}).fit(IMAGES[:1], [1]),
           ValueError, next(iter(p))) for p in ({"count_by": "x"}, {"method": "x"},
                                                 {"sigma": -1}, {"n_jobs": 0},
                                                 {"calibrate": "yes"}, {"channel": "x"})],
        (lambda: ImageFeatures(families=["hog"]).fit(IMAGES), ValueError, "families"),
        (lambda: ImageFeatures(n_jobs="two").fit(IMAGES), ValueError, "n_jobs='two'"),
        (lambda: ImageFeatures(channel="x").fit(IMAGES), ValueError, "channel='x'"),
        (lambda: ImageFeatures(segment_params={"bogus": 1}).fit(IMAGES), ValueError,
         r"unknown keys \['bogus'\]"),
        (lambda: ImageFeatures(segment_params={"method": "x"}).fit(IMAGES), ValueError,
         "method='x'"),
        (lambda: ImageFeatures(sigmas=2).fit(IMAGES), ValueError, "sigmas=2"),
        (lambda: ImageFeatures().fit_transform([np.zeros((4, 4, 4, 4))]), ValueError, "3-D"),
        (lambda: SegmentationCounter().fit([np.zeros((8, 8), complex)], [1]), TypeError,
         "dtype complex128"),
        (lambda: make_counter("densities"), ValueError, "method='densities'"),
        (lambda: make_counter("regression", head="knn"), ValueError, "head 'knn'"),
        (lambda: make_counter("cnn_density", head="xgb"), ValueError, "no regression head"),
        (lambda: make_counter("segmentation", head="lr"), ValueError, "no regression head"),
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
    assert type(make_counter().steps[-1][1].estimator).__name__ == "RidgeCV"
    pipeline = make_counter("regression", head="xgb", families=["tophat"], n_jobs=2)
    assert pipeline.steps[0][1].families == ["tophat"]
    assert type(pipeline.steps[-1][1].estimator).__name__ == "XGBRegressor"


def test_the_regression_counter_never_counts_below_zero():
    """Ridge regression on image features predicted -10.6 cells on an empty field (a line
    fitted on counts crosses zero below the smallest)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    images = []
    for k in (2, 4, 6, 8, 10, 12):  # separated disks of radius 4
        image, centres = np.zeros((64, 64)), []
        while len(centres) < k:
            p = rng.uniform(6, 58, 2)
            if all(np.hypot(*(p - q)) > 11 for q in centres):
                centres.append(p)
                image[(yy - p[0]) ** 2 + (xx - p[1]) ** 2 < 16] = 1
        images.append(image)
    counter = make_counter("regression").fit(images, [1, 7, 13, 19, 25, 31])  # 3 x k - 5
    empty = np.zeros((64, 64))
    raw = counter[-1].estimator_.predict(counter[:-1].transform([empty]))
    assert raw[0] < 0 and counter.predict([empty]).tolist() == [0.0]
    assert_allclose(counter.predict(images), np.maximum(
        counter[-1].estimator_.predict(counter[:-1].transform(images)), 0))


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


# --------------------------------------------------------------------------- density counting


def _blobs(count, seed, shape=(64, 64)):
    """Gaussian blobs (sigma 1.6 px) at random positions, overlapping at times, and their centres."""
    rng = np.random.default_rng(seed)
    points = rng.uniform(2, np.array(shape) - 3, size=(count, 2))
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = np.full(shape, 0.1)
    for r, c in points:
        image += 0.8 * np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2 * 1.6**2))
    return (image + rng.normal(0, 0.02, shape)).astype(np.float32), points


BLOBS = [_blobs(int(k), seed=int(k)) for k in np.linspace(3, 40, 14)]
BLOB_IMAGES = [b[0] for b in BLOBS]
BLOB_POINTS = [b[1] for b in BLOBS]


def _density_counter(**params):
    from featcell.counting import DensityCounter

    defaults = {"sigma": 2.0, "features": "filters", "scales": (1.0, 2.0, 4.0), "head": "lr",
                "n_samples": 8000, "zoom": 1.0}
    return DensityCounter(**{**defaults, **params})


# three new blob images, with 5, 17 and 33 blobs
HELD_OUT_BLOBS = [_blobs(k, seed=100 + k) for k in (5, 17, 33)]


def _check_counts_held_out_blobs(counter):
    """The counter counts the held-out blobs within 2.5, and its maps (64 x 64) sum to
    its counts; returns the maps."""
    images = [image for image, _ in HELD_OUT_BLOBS]
    predicted = counter.predict(images)
    assert_allclose(predicted, [5, 17, 33], atol=2.5)
    density = counter.predict_density(images)
    assert all(d.shape == (64, 64) for d in density)
    assert_allclose([d.sum() + counter.intercept_ for d in density], predicted, rtol=1e-9)
    return density


@pytest.mark.parametrize("head", ["lr", "xgb"])
def test_density_counter_counts_blobs(head):
    counter = _density_counter(head=head).fit(BLOB_IMAGES[::2], BLOB_POINTS[::2])
    # the density map sums to the count and peaks near the objects
    density = _check_counts_held_out_blobs(counter)[0]
    r, c = np.round(HELD_OUT_BLOBS[0][1][0]).astype(int)
    assert density[r, c] > 5 * np.median(density)


def test_density_counter_score_is_the_r2_of_the_counts():
    from sklearn.metrics import r2_score
    from sklearn.model_selection import GroupKFold, cross_val_score

    counter = _density_counter().fit(BLOB_IMAGES[::2], BLOB_POINTS[::2])
    images = [image for image, _ in HELD_OUT_BLOBS]
    points = [p for _, p in HELD_OUT_BLOBS]
    expected = r2_score([5, 17, 33], counter.predict(images))
    assert counter.score(images, points) == pytest.approx(expected)
    assert counter.score(images, [5.0, 17.0, 33.0]) == pytest.approx(expected)  # counts given
    # the default scoring of cross-validation (was a ValueError: points fed to r2_score)
    scores = cross_val_score(_density_counter(), BLOB_IMAGES, BLOB_POINTS, cv=GroupKFold(2),
                             groups=np.arange(len(BLOB_IMAGES)) % 2, error_score="raise")
    assert scores.shape == (2,) and np.all(scores > 0.5)


def test_density_counter_regions_and_grid():
    counter = _density_counter().fit(BLOB_IMAGES, BLOB_POINTS)
    image = BLOB_IMAGES[3]
    total = counter.predict([image])[0]
    halves = counter.count_in([image], [np.array([[0, 0, 32, 64], [32, 0, 64, 64]])])[0]
    assert_allclose(halves.sum() + counter.intercept_, total, rtol=1e-9)
    mask = np.zeros((64, 64), bool)
    mask[:, :32] = True
    labels = mask.astype(int) + 1
    assert_allclose(counter.count_in([image], [mask])[0], halves[:1], rtol=1e-9)
    assert_allclose(counter.count_in([image], [labels])[0], halves[::-1], rtol=1e-9)
    grid = counter.predict_grid([image])
    assert grid.shape == (1, 64) and grid.sum() == pytest.approx(total)
    with pytest.raises(ValueError, match="regions"):
        counter.count_in([image], [np.zeros((3, 3))])


def test_density_counter_sigma_by_cross_validation_and_calibration():
    counter = _density_counter(sigma="auto", sigma_grid=(1.0, 3.0), calibrate=True, cv=3)
    # the last two images carry counts only: held back from the head, used to calibrate
    points = BLOB_POINTS[:-2] + [float(len(p)) for p in BLOB_POINTS[-2:]]
    counter.fit(BLOB_IMAGES, points)
    assert set(counter.cv_mae_) == {1.0, 3.0}
    assert counter.sigma_ == min(counter.cv_mae_, key=counter.cv_mae_.get)
    assert counter.coef_ != 1.0 and np.isfinite(counter.intercept_)
    error = np.abs(counter.predict(BLOB_IMAGES) - [len(p) for p in BLOB_POINTS]).mean()
    assert error < 2.5


def test_density_counter_reads_points_from_files(tmp_path):
    (tmp_path / "img").mkdir()
    rows = ["image,x,y"]
    paths = []
    for i, (image, points) in enumerate(zip(BLOB_IMAGES[:6], BLOB_POINTS[:6])):
        path = tmp_path / "img" / f"f{i}.tif"
        tifffile.imwrite(path, image)
        paths.append(path)
        rows += [f"f{i}.tif,{c},{r}" for r, c in points]
    (tmp_path / "points.csv").write_text("\n".join(rows) + "\n")
    counter = _density_counter().fit(paths, tmp_path / "points.csv")
    assert counter.n_train_pixels_ > 0
    assert counter.predict(paths[:1]).shape == (1,)


@pytest.mark.parametrize(
    ("points", "match"),
    [
        ([1.0, 2.0], "counts only"),
        ([np.array([[1.0, 1.0]])], "1 entries but there are 2"),
        ([np.array([[1.0, np.nan]]), np.zeros((0, 2))], "NaN"),
        ([np.array([[70.0, 1.0]]), np.zeros((0, 2))], "outside the image"),
        ([np.array([[1.0, 1.0, 1.0]]), np.zeros((0, 2))], r"\(k, 2\)"),
    ],
)
def test_density_counter_bad_points(points, match):
    with pytest.raises(ValueError, match=match):
        _density_counter().fit(BLOB_IMAGES[:2], points)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"sigma": -1}, "sigma"),
        ({"sigma": "big"}, "sigma"),
        ({"sigma": "auto", "sigma_grid": []}, "sigma_grid"),
        ({"features": "hog"}, "features"),
        ({"n_samples": 5}, "n_samples"),
        ({"stride": 0}, "stride"),
        ({"scales": []}, "scales"),
        ({"filters": ["sobel"]}, "filters"),
        ({"auto_context": -1}, "auto_context"),
        ({"auto_context": 4}, "auto_context"),
        ({"auto_context": True}, "auto_context"),
        ({"calibrate": "yes"}, "calibrate"),
        ({"zoom": "big"}, "zoom"),
        ({"zoom": 10}, "zoom"),
        ({"zoom": True}, "zoom"),
    ],
)
def test_density_counter_bad_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        _density_counter(**params).fit(BLOB_IMAGES[:2], BLOB_POINTS[:2])


def test_zoom_moves_images_and_dots_together():
    from featcell.counting import _zoomed, _zoomed_points

    # a blob centred at (20.3, 41.7) of a 64 x 96 image: at every zoom, its resized
    # centroid is where the dot moves
    yy, xx = np.mgrid[:64, :96]
    image = (255 * np.exp(-((yy - 20.3) ** 2 + (xx - 41.7) ** 2) / 18)).astype(np.uint8)
    for zoom in (0.5, 0.37, 1.6):
        small = _zoomed(image, zoom)
        assert small.dtype == np.float32 and small.max() <= 1.0  # uint8 scaled as 0-1
        assert small.shape == (round(64 * zoom), round(96 * zoom))
        rows, cols = np.mgrid[: small.shape[0], : small.shape[1]]
        centroid = [(small * rows).sum() / small.sum(), (small * cols).sum() / small.sum()]
        moved = _zoomed_points(np.array([[20.3, 41.7]]), (64, 96), small.shape)[0]
        assert_allclose(centroid, moved, atol=0.05)
    assert _zoomed(image, 1.0) is image
    assert _zoomed(image[:16, :20], 0.125, 3).shape == (3, 3)  # a side keeps a grid point
    # dots at the far edge stay inside the resized image
    edge = _zoomed_points(np.array([[63.49, 95.49]]), (64, 96), (21, 32))
    assert (edge < np.array([21, 32]) - 0.5).all()


def test_zoom_candidates_follow_the_dot_spacing():
    from featcell.counting import DensityCounter

    grid = np.stack(np.meshgrid(np.arange(5), np.arange(5)), -1).reshape(-1, 2).astype(float)
    for spacing, wanted in [(8.0, [1.0]), (12.0, [1.0]), (17.0, [1.0, 0.5]),
                            (34.0, [1.0, 0.25]), (4.0, [1.0]), (200.0, [1.0, 0.125])]:
        assert DensityCounter()._zooms([grid * spacing, grid * spacing, 3.0]) == wanted, spacing
    assert DensityCounter()._zooms([grid[:1], grid[:1], 4.0]) == [1.0]  # no neighbours
    assert DensityCounter(zoom=0.3)._zooms([grid * 17.0]) == [0.3]
    # without out-of-fold counts (one dotted image; or nothing to choose or calibrate) the
    # other zoom could never be chosen: it is not fitted
    assert DensityCounter()._zooms([grid * 34.0, 3.0]) == [1.0]
    plain = DensityCounter(sigma=2.0, calibrate=False, auto_context=0)
    assert plain._zooms([grid * 34.0, grid * 34.0]) == [1.0]


def test_unzoomed_density_keeps_its_sum_and_shape():
    from featcell.counting import _unzoomed

    rng = np.random.default_rng(0)
    for shape, original in [((21, 32), (64, 96)), ((40, 30), (25, 19)), ((7, 9), (7, 9))]:
        density = rng.normal(0.0, 1.0, shape)
        density -= density.mean() - 1e-3  # both signs, summing to about 0
        back = _unzoomed(density, original)
        assert back.shape == original
        assert back.sum() == pytest.approx(density.sum(), abs=1e-9)


def test_clearly_lower_is_the_one_standard_error_rule():
    from featcell.counting import _clearly_lower

    reference = np.array([3.0, 2.0, 4.0, 5.0])
    assert _clearly_lower(reference - 1.0, reference)  # lower on every image
    assert not _clearly_lower(reference - [2.0, -1.5, 2.0, -1.5], reference)  # mean -0.25, SE 1
    assert not _clearly_lower(reference, reference)
    assert not _clearly_lower([1.0], [2.0])  # one image: no standard error


def test_density_counter_at_a_zoom_counts_and_maps_at_the_images_size():
    # blobs magnified 3 times (sigma 4.8 px, dots about 20 px apart): fitted at zoom 1/3,
    # the counter sees them as at their own scale; maps come back at the image's size
    from skimage.transform import rescale

    images = [rescale(image, 3, order=1).astype(np.float32) for image in BLOB_IMAGES]
    points = [(p + 0.5) * 3 - 0.5 for p in BLOB_POINTS]
    counter = _density_counter(zoom=1 / 3).fit(images[::2], points[::2])
    assert counter.zoom_ == pytest.approx(1 / 3) and counter.zoom_cv_mae_ == {}
    test = images[1::2]
    wanted = [len(p) for p in BLOB_POINTS[1::2]]
    predicted = counter.predict(test)
    assert np.abs(predicted - wanted).mean() < 2.5
    density = counter.predict_density(test[:2])
    assert density[0].shape == (192, 192)
    assert_allclose([d.sum() + counter.intercept_ for d in density], predicted[:2], rtol=1e-9)
    halves = counter.count_in(test[:1], [np.array([[0, 0, 96, 192], [96, 0, 192, 192]])])[0]
    assert_allclose(halves.sum() + counter.intercept_, predicted[0], rtol=1e-9)
    # a bad image is named with its own shape, before any resizing
    with pytest.raises(ValueError, match=r"shape \(1, 50\)"):
        counter.predict([np.zeros((1, 50), np.float32)])
    # with a negative intercept, an empty image's grid sums to predict's 0, not below
    counter.intercept_ = -1e6
    assert counter.predict(test[:1])[0] == 0.0 and not counter.predict_grid(test[:1]).any()
    # an image whose resized side would hold no point of the stride-4 grid still counts
    coarse = _density_counter(zoom=0.125, stride=4).fit(images[:3], points[:3])
    assert coarse.predict([images[0][:16, :20]]).shape == (1,)
    with pytest.raises(ValueError, match="zoom"):
        _density_counter(zoom=0.0).fit(images[:2], points[:2])


def test_density_counter_auto_zoom_is_chosen_on_out_of_fold_counts():
    # the same magnified blobs with filters of 1-4 px: "auto" also fits at the zoom that
    # brings the dots to 8.5 px apart, and keeps it because its out-of-fold counts are
    # clearly better
    from skimage.transform import rescale

    images = [rescale(image, 3, order=1).astype(np.float32) for image in BLOB_IMAGES]
    points = [(p + 0.5) * 3 - 0.5 for p in BLOB_POINTS]
    counter = _density_counter(zoom="auto", cv=3).fit(images, points)
    spacing = counting._dot_spacing(points)
    assert 15 < spacing < 19  # the blobs' 5.6 px, magnified 3 times
    zoom = round(8.5 / spacing, 4)
    assert set(counter.zoom_cv_mae_) == {1.0, zoom}
    assert counter.zoom_ == zoom and counter.zoom_cv_mae_[zoom] < counter.zoom_cv_mae_[1.0]
    plain = _density_counter(zoom=1.0, cv=3).fit(images, points)
    assert plain.zoom_ == 1.0 and plain.zoom_cv_mae_ == {}


def test_density_counter_api_and_make_counter():
    from featcell.counting import DensityCounter

    estimator = DensityCounter()
    check_no_attributes_set_in_init("DensityCounter", estimator)
    check_parameters_default_constructible("DensityCounter", estimator)
    check_get_params_invariance("DensityCounter", estimator)
    check_set_params("DensityCounter", estimator)
    counter = make_counter("density", head="rf", sigma=3.0)
    assert isinstance(counter, DensityCounter) and (counter.head, counter.sigma) == ("rf", 3.0)
    assert make_counter("density").head == "xgb"
    assert make_counter("density").features == "filters+cnn"


def test_calibrated_out_of_fold_error_leaves_each_image_out():
    from featcell.counting import _calibrated_oof_errors

    wanted = np.array([10.0, 20.0, 30.0, 40.0])
    # sums off by a linear map: the calibration undoes it, leaving nothing
    assert_allclose(_calibrated_oof_errors(0.5 * wanted - 3, wanted), 0.0, atol=1e-9)
    # one outlier: the line through the other three (slope 1, no offset) predicts it,
    # so its error is whole; the raw error would be 10 / 4
    found = np.array([10.0, 20.0, 30.0, 50.0])
    errors = [abs(found[3] - wanted[3])]  # image 4 left out: the others fit found = wanted
    slope, intercept = np.polyfit(found[[0, 1, 3]], wanted[[0, 1, 3]], 1)
    errors.append(abs(intercept + slope * found[2] - wanted[2]))
    slope, intercept = np.polyfit(found[[0, 2, 3]], wanted[[0, 2, 3]], 1)
    errors.append(abs(intercept + slope * found[1] - wanted[1]))
    slope, intercept = np.polyfit(found[[1, 2, 3]], wanted[[1, 2, 3]], 1)
    errors.append(abs(intercept + slope * found[0] - wanted[0]))
    assert_allclose(_calibrated_oof_errors(found, wanted), errors[::-1])


def test_pixel_features_names_and_per_channel_selection():
    from featcell.features.image import PixelFeatures

    from featcell.features.image import CNNPixelFeatures

    rgb = np.random.default_rng(0).random((20, 24, 3))
    bank = PixelFeatures(filters={0: ["gaussian"], 2: ["log", "hessian"]}, scales=(0.3, 1.0))
    # maps, not tables: no set_output (pandas output made every transform a ValueError)
    assert not hasattr(bank, "set_output") and not hasattr(CNNPixelFeatures(), "set_output")
    assert bank.fit().fit_transform([rgb])[0].shape[:2] == (20, 24)
    maps = bank.fit().maps(rgb)
    names = bank.get_feature_names_out().tolist()
    assert names == ["Pixel_Gaussian_Ch1_s0p3", "Pixel_Gaussian_Ch1_s1", "Pixel_LoG_Ch3_s1",
                     "Pixel_HessianEig1_Ch3_s1", "Pixel_HessianEig2_Ch3_s1"]
    assert maps.shape == (20, 24, 5)
    from scipy import ndimage as ndi

    # values against scipy's own filters
    assert_allclose(maps[..., 1], ndi.gaussian_filter(rgb[..., 0], 1.0, truncate=3.5), atol=1e-5)
    log = ndi.gaussian_laplace(rgb[..., 2], 1.0, truncate=3.5)
    assert_allclose(maps[..., 2], log, atol=1e-4)
    assert (maps[..., 3] >= maps[..., 4]).all()
    with pytest.raises(ValueError, match="channel 2 requested"):
        bank.maps(rgb[..., :2])


def test_pixel_features_large_scales_match_full_resolution():
    from featcell.features.image import PixelFeatures, _filter_maps_at

    image = BLOB_IMAGES[5]
    maps = PixelFeatures(filters=["gaussian", "log"], scales=[10.0]).fit().maps(image)
    exact = _filter_maps_at(image, 10.0, ["gaussian", "log"])
    inner = (slice(12, -12), slice(12, -12))
    assert_allclose(maps[..., 0][inner], exact["Gaussian"][inner], atol=2e-3)
    scale = np.abs(exact["LoG"]).max()
    assert np.abs(maps[..., 1] - exact["LoG"])[inner].max() < 0.05 * scale


@pytest.mark.filterwarnings("error")
def test_pixel_features_of_large_intensities_scale_without_overflow():
    # first-order maps grow with the intensity, the structure tensor with its square: at
    # 1e12 the tensor's eigenvalues (about 1e22) fit float32, their intermediate squares not
    from featcell.features.image import PixelFeatures

    bank = PixelFeatures(filters=["gradient", "structure", "hessian"], scales=[1.0]).fit()
    image = BLOB_IMAGES[5].astype(np.float64)
    maps, large = bank.maps(image), bank.maps(image * 1e12)
    names = list(bank.get_feature_names_out())
    assert np.isfinite(large).all()
    for k, name in enumerate(names):
        factor = 1e24 if "StructureTensor" in name else 1e12
        assert_allclose(large[..., k], maps[..., k] * factor, rtol=1e-4,
                        atol=1e-6 * factor * np.abs(maps[..., k]).max(), err_msg=name)


@pytest.mark.parametrize(("shape", "step"), [((64, 64), 2), ((37, 50), 3), ((20, 9), 4), ((8, 8), 1)])
def test_sum_weights_give_the_interpolated_maps_sum(shape, step):
    from featcell.counting import _sum_weights
    from featcell.features.image import _grid, upsample_linear

    grid = _grid(shape, step)[1]
    values = np.random.default_rng(0).random(grid)
    rows, cols = _sum_weights(grid, shape, step)
    full = upsample_linear(values, shape, step, step // 2) if step > 1 else values
    assert full.shape == shape
    assert rows @ values @ cols == pytest.approx(full.sum(), rel=1e-12)


class _Offsets:
    """Stands in for a numpy Generator: ``integers`` returns preset offsets in turn."""

    def __init__(self, values):
        self.values = list(values)

    def integers(self, high):
        value = self.values.pop(0)
        assert 0 <= value < high
        return value


class _Identity:
    """A 'head' whose density is its first feature."""

    def predict(self, X):
        return X[:, 0]


@pytest.mark.parametrize("margin", [0, 8])
def test_systematic_subgrid_sum_is_unbiased_and_close_for_smooth_densities(margin):
    from featcell.counting import _subgrid_sum, _sum_weights, _systematic_subgrid
    from featcell.points import density_target

    shape, step = (61, 70), 2
    points = np.random.default_rng(1).uniform(margin, 60 - margin, size=(40, 2))
    density = density_target(points, shape, 2.0)[1::2, 1::2]  # on the prediction grid
    maps = density[..., None]
    rows, cols = _sum_weights(density.shape, shape, step)
    exact = rows @ density @ cols
    for q in (2, 3):
        estimates = []
        for r0 in range(q):
            for c0 in range(q):
                subgrid = _systematic_subgrid(maps, shape, step, q, _Offsets([r0, c0]))
                kept = len(range(r0, density.shape[0], q)) * len(range(c0, density.shape[1], q))
                assert len(subgrid[0]) == kept
                estimates.append(_subgrid_sum(_Identity(), subgrid))
        # every grid point is kept by exactly one of the q*q offsets: the mean is the sum
        assert np.mean(estimates) == pytest.approx(exact, rel=1e-12)
        error = np.abs(np.array(estimates) - exact).max() / exact
        if q == 2:  # 4 px apart, 2 sigma, as fit chooses: within 1 % (5 % with border dots)
            assert error < (0.01 if margin else 0.05)
        else:  # 6 px apart: aliasing shows
            assert error > 0.02
    whole = _systematic_subgrid(maps, shape, step, 1, np.random.default_rng(0))
    assert _subgrid_sum(_Identity(), whole) == pytest.approx(exact, rel=1e-12)


def test_density_counter_auto_context_stages():
    train, points = BLOB_IMAGES[::2], BLOB_POINTS[::2]
    counter = _density_counter(auto_context=2).fit(train, points)
    assert len(counter.context_heads_) == 2
    # the last head sees the pixel maps and the context: a density and 4 averages of it
    assert counter.head_.n_features_in_ == len(counter.feature_names_) + 5
    for head in counter.context_heads_[1:]:
        assert head.n_features_in_ == len(counter.feature_names_) + 5
    assert counter.context_heads_[0].n_features_in_ == len(counter.feature_names_)
    _check_counts_held_out_blobs(counter)
    single = clone(counter).set_params(auto_context=0).fit(train, points)
    assert single.context_heads_ == []
    assert single.head_.n_features_in_ == len(single.feature_names_)
    # one dotted image: no folds to cross-fit the context, so one stage
    alone = clone(counter).fit(train[:1], points[:1])
    assert alone.context_heads_ == []


class _Column:
    """A 'head' whose density is one of its features."""

    def __init__(self, column):
        self.column = column

    def predict(self, X):
        return X[:, self.column]


def test_context_planes_are_a_density_and_its_local_averages():
    from scipy import ndimage as ndi

    from featcell.counting import _CONTEXT_SCALES, DensityCounter

    counter = DensityCounter(stride=2)
    counter.sigma_ = 4.0
    coarse = np.random.default_rng(0).random((20, 24, 3)).astype(np.float32)
    planes = counter._context_planes(coarse, [_Column(1)])
    assert planes.shape == (1 + len(_CONTEXT_SCALES), 20, 24)
    assert_allclose(planes[0], coarse[..., 1])
    # coarse points are 4 px apart: sigma 4 px x 0.5 is half a point
    assert_allclose(planes[1], ndi.gaussian_filter(coarse[..., 1], 0.5, mode="reflect"),
                    rtol=1e-5)
    assert_allclose(planes.sum(axis=(1, 2)), coarse[..., 1].sum(), rtol=1e-4)
    # a second stage sees the maps and the first stage's planes after them
    chained = counter._context_planes(coarse, [_Column(1), _Column(3 + len(_CONTEXT_SCALES))])
    assert_allclose(chained[0], planes[-1])
    assert counter._context_planes(coarse, []) is None


def test_auto_calibration_with_auto_context_uses_held_back_images_only():
    # dotted images, then images with counts only that are 10 more than their dots
    dotted = list(range(0, 14, 2))
    held = list(range(1, 14, 2))
    images = [BLOB_IMAGES[i] for i in dotted + held]
    points = [BLOB_POINTS[i] for i in dotted] + [len(BLOB_POINTS[i]) + 10.0 for i in held]
    counter = _density_counter(auto_context=1).fit(images, points)
    assert 7 < counter.intercept_ < 13 and abs(counter.coef_ - 1) < 0.2
    # without held-back images, out-of-fold sums through cross-fitted stages are not
    # trusted to calibrate: no line
    plain = _density_counter(auto_context=1).fit(images[:7], points[:7])
    assert (plain.coef_, plain.intercept_) == (1.0, 0.0)
    forced = _density_counter(auto_context=1, calibrate=True).fit(images[:7], points[:7])
    assert forced.coef_ != 1.0


def test_density_counter_keeps_a_bounded_pixel_sample(monkeypatch):
    # the out-of-fold sub-grids keep at most 4 * n_samples rows, yet every dotted image
    # gets one (on a coarser sub-grid if need be): before, images beyond the budget had no
    # out-of-fold count, so on large images sigma and the calibration rested on a few
    kept, original = [], counting._systematic_subgrid

    def spy(maps, shape, step, q, rng):
        kept.append(original(maps, shape, step, q, rng))
        return kept[-1]

    monkeypatch.setattr(counting, "_systematic_subgrid", spy, raising=True)
    counter = _density_counter(sigma="auto", sigma_grid=(1.5, 3.0), n_samples=128, cv=2)
    counter.fit(BLOB_IMAGES, BLOB_POINTS)  # 8 grids of 32 x 32 points: 2,048 at q = 1
    assert counter.n_train_pixels_ <= 128
    assert set(counter.cv_mae_) == {1.5, 3.0}
    assert len(kept) == len(BLOB_IMAGES)
    assert sum(len(features) for features, *_ in kept) <= 4 * 128


@pytest.mark.parametrize("n_points, n_images, budget, spacing", [
    (1024, 8, 512, 4), (1024, 8, 8192, 1), (16384, 32, 256_000, 2), (147_456, 32, 256_000, 5),
])
def test_fitting_spacing_keeps_the_sub_grids_within_the_budget(n_points, n_images, budget,
                                                                spacing):
    q = counting._fitting_spacing(n_points, n_images, budget)
    assert q == spacing
    assert n_images * n_points / q**2 <= budget  # the coarsest spacing needed, no coarser
    assert q == 1 or n_images * n_points / (q - 1) ** 2 > budget


def test_channels_first_interpolation_equals_upsample_linear():
    from featcell.features.image import _upsample_channels_first, upsample_linear

    small = np.random.default_rng(0).random((3, 7, 9)).astype(np.float32)
    for step, offset in ((4, 1.5), (2, 0.25), (1.3, -0.2)):
        out = _upsample_channels_first(small, (20, 31), step, offset)
        expected = upsample_linear(np.moveaxis(small, 0, -1), (20, 31), step, offset)
        assert_allclose(np.moveaxis(out, 0, -1), expected, atol=1e-6)


def test_pixel_maps_on_a_grid_equal_the_full_maps_there():
    from featcell.features.image import CNNPixelFeatures, PixelFeatures

    image = np.random.default_rng(0).random((45, 52, 3)).astype(np.float32)
    for extractor in (PixelFeatures(channels=[0, 2], scales=(0.3, 1.0, 3.5, 10.0)),
                      CNNPixelFeatures(channels=[1])):
        full = extractor.fit().maps(image)
        for step in (2, 3):
            grid = extractor.maps(image, step)
            assert_allclose(grid, full[step // 2 :: step, step // 2 :: step], atol=1e-5)
    with pytest.raises(ValueError, match="step"):
        PixelFeatures().fit().maps(image, 0)


@pytest.mark.skipif(not (DATA / "counting").is_dir(), reason="../shared/data is absent")
def test_density_counter_on_vgg_cells():
    import pandas as pd


    root = DATA / "counting" / "vgg_cells"
    table = pd.read_csv(root / "counts.csv")
    paths = [root / "images" / name for name in table["image"]]
    train, test = paths[:8], paths[80:86]
    counter = make_counter("density", sigma=3.0, channels=[2], n_samples=12000, stride=2)
    counter.fit(train, root / "dots")
    error = np.abs(counter.predict(test) - table["count"].to_numpy()[80:86]).mean()
    assert error < 10  # 8 training images, counts 74-317; the example gets ~3 with 32


def test_cli_density_train_score_and_report(tmp_path, capsys):
    from featcell.cli import main

    (tmp_path / "img").mkdir()
    rows = ["image,row,col"]
    for i, (image, points) in enumerate(zip(BLOB_IMAGES[:9], BLOB_POINTS[:9])):
        tifffile.imwrite(tmp_path / "img" / f"f{i}.tif", image)
        rows += [f"f{i}.tif,{r},{c}" for r, c in points]
    (tmp_path / "points.csv").write_text("\n".join(rows) + "\n")
    model = tmp_path / "counter.featcell"
    code = main(["train", str(tmp_path / "img"), "--task", "counting", "--model", "density",
                 "--points", str(tmp_path / "points.csv"), "--sigma", "2", "--cv", "3",
                 "--pixel-head", "lr",
                 "--group-by", "none", "-o", str(model), "--report", str(tmp_path / "report"),
                 "--quiet"])
    assert code == 0 and model.is_file()
    assert (tmp_path / "report" / "figures" / "density_maps.png").is_file()
    assert "game3" in capsys.readouterr().out
    (tmp_path / "img" / "broken.tif").write_bytes(b"not a tiff")
    code = main(["score", str(model), str(tmp_path / "img"), "-o", str(tmp_path / "counts.csv"),
                 "--save-density", str(tmp_path / "maps"), "--quiet"])
    assert code == 0
    import pandas as pd

    counts = pd.read_csv(tmp_path / "counts.csv").set_index("Metadata_ImageID")["Prediction"]
    assert "broken.tif" not in counts.index and len(counts) == 9  # skipped, the others kept
    errors = pd.read_csv(tmp_path / "counts_errors.csv")
    assert errors["path"].str.endswith("broken.tif").tolist() == [True]
    assert abs(counts["f3.tif"] - len(BLOB_POINTS[3])) < 3
    density = tifffile.imread(tmp_path / "maps" / "f3_density.tif")
    assert density.shape == (64, 64) and abs(density.sum() - counts["f3.tif"]) < 1
    # a bad points file is a one-line error naming it (exit status 2)
    (tmp_path / "bad.csv").write_text("image,x,y\nf0.tif,1,nan\n")
    code = main(["train", str(tmp_path / "img"), "--task", "counting", "--model", "density",
                 "--points", str(tmp_path / "bad.csv"), "-o", str(tmp_path / "m2.featcell")])
    assert code == 2
    assert "bad.csv" in capsys.readouterr().err


def test_cli_scores_a_counter_saved_from_python(tmp_path):
    # save_model without the command line's metadata: score still counts whole images
    # (it used to measure them as cells and fail on every image)
    import pandas as pd

    from featcell.cli import main
    from featcell.persist import save_model

    (tmp_path / "img").mkdir()
    for i, image in enumerate(BLOB_IMAGES[:3]):
        tifffile.imwrite(tmp_path / "img" / f"f{i}.tif", image)
    counter = _density_counter().fit(BLOB_IMAGES[3:9], BLOB_POINTS[3:9])
    save_model(counter, tmp_path / "m.featcell")
    code = main(["score", str(tmp_path / "m.featcell"), str(tmp_path / "img"), "-o",
                 str(tmp_path / "counts.csv"), "--quiet"])
    assert code == 0
    counts = pd.read_csv(tmp_path / "counts.csv").sort_values("Metadata_ImageID")
    assert_allclose(counts["Prediction"], counter.predict(BLOB_IMAGES[:3]), rtol=1e-5)


def test_cli_counting_score_resumes_after_an_interruption(tmp_path, monkeypatch):
    import pandas as pd

    from featcell.cli import main
    from featcell.counting import DensityCounter
    from featcell.persist import load_model, save_model

    (tmp_path / "img").mkdir()
    for i, image in enumerate(BLOB_IMAGES[:11]):
        tifffile.imwrite(tmp_path / "img" / f"f{i:02d}.tif", image)
    save_model(_density_counter().fit(BLOB_IMAGES[:6], BLOB_POINTS[:6]), tmp_path / "m.featcell")
    command = ["score", str(tmp_path / "m.featcell"), str(tmp_path / "img"), "-o",
               str(tmp_path / "counts.csv"), "--quiet"]
    counted, predict = [], DensityCounter.predict

    def interrupted(self, images):  # the second batch of eight is interrupted
        if counted:
            raise KeyboardInterrupt
        counted.extend(images)
        return predict(self, images)

    monkeypatch.setattr(DensityCounter, "predict", interrupted)
    assert main(command) == 130
    assert not (tmp_path / "counts.csv").exists() and len(counted) == 8
    assert (tmp_path / "counts_progress.jsonl").is_file()

    def spy(self, images):
        counted.extend(images)
        return predict(self, images)

    monkeypatch.setattr(DensityCounter, "predict", spy)
    assert main(command) == 0  # only the three left are counted
    assert len(counted) == 11 and not (tmp_path / "counts_progress.jsonl").exists()
    counts = pd.read_csv(tmp_path / "counts.csv")
    assert counts["Metadata_ImageID"].tolist() == [f"f{i:02d}.tif" for i in range(11)]
    assert_allclose(counts["Prediction"], predict(load_model(tmp_path / "m.featcell"),
                                                  BLOB_IMAGES[:11]), rtol=1e-5)
    # another model's progress is not mixed in
    counted.clear()
    monkeypatch.setattr(DensityCounter, "predict", interrupted)
    assert main(command) == 130
    save_model(_density_counter(sigma=3.0).fit(BLOB_IMAGES[:6], BLOB_POINTS[:6]),
               tmp_path / "m.featcell")
    assert main(command) == 2
    assert main([*command, "--overwrite"]) == 130  # (interrupted at once: a fresh start)
    monkeypatch.setattr(DensityCounter, "predict", spy)
    assert main(command) == 0  # every count the new model's, none left from the old one
    assert_allclose(pd.read_csv(tmp_path / "counts.csv")["Prediction"],
                    predict(load_model(tmp_path / "m.featcell"), BLOB_IMAGES[:11]), rtol=1e-5)


def test_cli_counting_score_names_files_that_are_not_utf8(tmp_path):
    # b"\xff.tif" counted, and a broken b"\xfe.tif" named, in tables that can hold them
    import os

    import pandas as pd

    from featcell.cli import main
    from featcell.persist import save_model

    (tmp_path / "img").mkdir()
    tifffile.imwrite(tmp_path / "img" / "a.tif", BLOB_IMAGES[0])
    try:
        tifffile.imwrite(os.fsdecode(os.fsencode(tmp_path / "img") + b"/\xff.tif"),
                         BLOB_IMAGES[1])
        with open(os.fsencode(tmp_path / "img") + b"/\xfe.tif", "wb") as broken:
            broken.write(b"not a tiff")
    except OSError:
        pytest.skip("the file system refuses names that are not UTF-8")
    save_model(_density_counter().fit(BLOB_IMAGES[3:9], BLOB_POINTS[3:9]), tmp_path / "m.featcell")
    code = main(["score", str(tmp_path / "m.featcell"), str(tmp_path / "img"), "-o",
                 str(tmp_path / "counts.csv"), "--quiet"])
    assert code == 0
    assert sorted(pd.read_csv(tmp_path / "counts.csv")["Metadata_ImageID"]) == ["\\xff.tif",
                                                                                "a.tif"]
    errors = pd.read_csv(tmp_path / "counts_errors.csv")
    assert [Path(p).name for p in errors["path"]] == ["\\xfe.tif"]


def test_head_rows_bin_once_and_fit_like_the_heads_own_fit():
    from featcell.counting import _PIXEL_XGB, _HeadRows
    from featcell.heads import make_head

    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 6)).astype(np.float32)
    y = X[:, 0] ** 2 + X[:, 1] + 0.1 * rng.normal(size=3000)
    fold = np.arange(3000) % 3

    def head():
        return make_head("xgb", "regression", random_state=0).set_params(**_PIXEL_XGB)

    rows = _HeadRows(X, fold, np.random.default_rng(0))
    # all rows, bins sketched on all of them (fewer than _SKETCH_ROWS): XGBRegressor.fit's model
    np.testing.assert_allclose(rows.fit(head(), y).predict(X), head().fit(X, y).predict(X),
                               rtol=1e-5, atol=1e-5)
    # all but a fold: the same rows as a plain fit, binned with the stage's bins
    out = fold != 1
    binned = rows.fit(head(), y, 1)
    assert binned.n_features_in_ == 6 and set(rows.binned) == {None, 1}
    plain = head().fit(X[out], y[out])
    assert np.corrcoef(binned.predict(X), plain.predict(X))[0, 1] > 0.99
    # a new target reuses the fold's binned rows
    other = rows.fit(head(), -y, 1)
    assert np.corrcoef(other.predict(X), -plain.predict(X))[0, 1] > 0.99
    # other heads are fitted on the rows as usual
    ridge = rows.fit(make_head("lr", "regression"), y, 2)
    expected = make_head("lr", "regression").fit(X[fold != 2], y[fold != 2])
    np.testing.assert_allclose(ridge.predict(X), expected.predict(X))


def test_no_count_is_negative_and_inverted_boxes_are_refused():
    """A calibration line crossing zero below the training counts gave -5 cells on an empty
    field; count_in took a box ending before it starts (a negative count, or the whole
    image)."""
    from featcell.counting import SegmentationCounter

    images = [_cells(k, seed=k) for k in (2, 4, 6, 8)]
    counter = SegmentationCounter().fit(images, [1, 7, 13, 19])  # 3 x found - 5
    assert counter.coef_ > 2 and counter.intercept_ < -3
    assert counter.predict([np.full((96, 96), 20.0)]).tolist() == [0.0]
    blobs = [_blobs(k, seed=k) for k in (4, 8, 12)]
    density = _density_counter().fit([b[0] for b in blobs], [b[1] for b in blobs])
    density.intercept_ = -1e3
    assert density.predict([blobs[0][0]]).tolist() == [0.0]
    with pytest.raises(ValueError, match=r"regions\[0\]: boxes \[1\] end before they start"):
        density.count_in([blobs[0][0]], [np.array([[0, 0, 64, 64], [0, 64, 64, 0]])])


def test_a_sigma_below_half_the_stride_is_refused():
    """sigma=0 at stride 2 fitted a counter that counted about 0 cells on its own training
    images: the target, sampled every other pixel, had lost most dots."""
    blobs = [_blobs(k, seed=k) for k in (4, 8)]
    for params in ({"sigma": 0.0}, {"sigma": 1.5, "stride": 4},
                   {"sigma": "auto", "sigma_grid": (0.5, 2.0)}):
        with pytest.raises(ValueError, match="below half the stride"):
            _density_counter(**params).fit([b[0] for b in blobs], [b[1] for b in blobs])


def test_density_counter_checks_n_jobs_as_the_other_estimators_do():
    blobs = [_blobs(k, seed=k) for k in (4, 8)]
    with pytest.raises(ValueError, match="n_jobs=0"):
        _density_counter(n_jobs=0).fit([b[0] for b in blobs], [b[1] for b in blobs])


def test_the_density_counter_refuses_images_with_other_channels():
    """A counter fitted on two-channel images (colour averaged) counted grey or
    three-channel images without a remark."""
    blobs = [_blobs(k, seed=k) for k in (4, 8, 12)]
    two = [np.dstack([b[0], b[0]]) for b in blobs]
    counter = _density_counter().fit(two, [b[1] for b in blobs])
    assert counter.channel_counts_ == (2,)
    assert counter.predict(two[:1]).shape == (1,)
    with pytest.raises(ValueError, match=r"image has 1 channel\(s\) but the counter was "
                                         r"fitted on images with 2"):
        counter.predict([blobs[0][0]])
    with pytest.raises(ValueError, match="image has 3 channel"):
        counter.predict_density([np.dstack([blobs[0][0]] * 3)])
    mixed = _density_counter().fit([two[0], blobs[1][0], two[2]], [b[1] for b in blobs])
    assert mixed.channel_counts_ == (1, 2) and len(mixed.predict([blobs[0][0]])) == 1
