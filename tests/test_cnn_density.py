"""Tests of featcell.cnn.CNNDensityCounter (make_counter("cnn_density")): tiny networks on
synthetic blobs, a few short epochs on 2 CPU cores."""

import numpy as np
import pytest

from featcell.counting import make_counter

pytest.importorskip("torch")


def _blobs(counts, seed=0, size=40):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, points = [], []
    for k in counts:
        p = rng.uniform(3, size - 3, size=(k, 2))
        image = sum((np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / 6) for r, c in p), np.zeros((size, size)))
        images.append(image + rng.normal(0, 0.02, image.shape))
        points.append(p)
    return images, points


IMAGES, POINTS = _blobs([2, 5, 8, 11, 14, 17, 4, 9, 13, 6])
FAST = {"width": 4, "max_epochs": 3, "patience": 2, "patches_per_epoch": 32, "patch_size": 32,
        "n_threads": 1}


@pytest.fixture(scope="module")
def fitted():
    return make_counter("cnn_density", **FAST).fit(IMAGES, POINTS)


def test_counts_are_density_sums_of_any_image_size(fitted):
    odd = IMAGES[0][:37, :35]  # sides not multiples of 4
    density = fitted.predict_density([odd])[0]
    assert density.shape == (37, 35) and (density >= 0).all()
    np.testing.assert_allclose(fitted.predict([odd]), density.sum(), rtol=1e-5)
    assert fitted.predict(IMAGES).shape == (10,)
    assert 1.0 <= fitted.sigma_ <= 8.0  # from the dot spacing
    assert 1 <= fitted.best_epoch_ <= 3 and fitted.network_sha256_


def test_seeded_and_tamper_checked(fitted):
    again = make_counter("cnn_density", **FAST).fit(IMAGES, POINTS)
    np.testing.assert_allclose(again.predict(IMAGES), fitted.predict(IMAGES), rtol=1e-5)
    fitted_bytes = fitted.network_
    try:
        fitted.network_ = fitted_bytes[:-8] + b"\0" * 8
        with pytest.raises(ValueError, match="modified after fit"):
            fitted.predict(IMAGES[:1])
    finally:
        fitted.network_ = fitted_bytes


def test_learns_to_count():
    counter = make_counter("cnn_density", **{**FAST, "width": 8, "max_epochs": 25,
                                            "patience": 6, "patches_per_epoch": 64})
    counter.fit(IMAGES, POINTS)
    test_images, test_points = _blobs([3, 7, 12, 16], seed=1)
    truth = np.array([len(p) for p in test_points])
    error = np.abs(counter.predict(test_images) - truth).mean()
    assert error < 0.5 * np.abs(truth - truth.mean()).mean() + 1.0, error


def test_bad_input():
    with pytest.raises(ValueError, match="count"):
        make_counter("cnn_density", **FAST).fit(IMAGES[:3], [2.0, 5.0, 8.0])
    with pytest.raises(ValueError, match="at least 2"):
        make_counter("cnn_density", **FAST).fit(IMAGES[:1], POINTS[:1])


def test_saved_counter_round_trip(fitted, tmp_path):
    from featcell.persist import load_model, save_model

    path = save_model(fitted, tmp_path / "counter.featcell")
    np.testing.assert_allclose(load_model(path).predict(IMAGES[:2]), fitted.predict(IMAGES[:2]),
                               rtol=1e-5)
