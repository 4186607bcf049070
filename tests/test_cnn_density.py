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
    assert 1.0 <= fitted.sigma_ <= 8.0  # from the dot spacing, chosen by validation
    assert 1 <= fitted.best_epoch_ <= 3 and fitted.network_sha256_


def test_score_is_the_r2_of_the_counts(fitted):
    from sklearn.metrics import r2_score

    truth = [len(p) for p in POINTS]
    assert fitted.score(IMAGES, POINTS) == pytest.approx(r2_score(truth, fitted.predict(IMAGES)))


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
    # three cross-fitted networks (the default), each trained on 6-7 of the 10 images
    counter = make_counter("cnn_density", **{**FAST, "width": 8, "max_epochs": 12, "patience": 8,
                                            "patches_per_epoch": 128, "batch_size": 8})
    counter.fit(IMAGES, POINTS)
    test_images, test_points = _blobs([3, 7, 12, 16], seed=1)
    truth = np.array([len(p) for p in test_points])
    error = np.abs(counter.predict(test_images) - truth).mean()
    assert error < 1.0, error  # counts 3-16; the mean count would be off by 4.5
    assert 0.5 <= counter.coef_ <= 2.0 and counter.best_epoch_ > 1


def test_cross_fitted_ensemble_with_dihedral_views(fitted):
    counter = fitted  # the defaults: three members, eight views
    assert len(counter.best_epochs_) == 3 and {h["member"] for h in counter.history_} == {0, 1, 2}
    assert 0.5 <= counter.coef_ <= 2.0 and np.isfinite(counter.validation_mae_)
    # the eight views: a transposed or rotated image has the transposed (rotated) density
    # (sides padded at the bottom and right: a rotation is exact for multiples of 4)
    image, odd = IMAGES[3][:36, :32], IMAGES[3][:37, :33]
    density = counter.predict_density([image, np.rot90(image), odd, odd.T])
    np.testing.assert_allclose(np.rot90(density[0]), density[1], atol=1e-6)
    np.testing.assert_allclose(density[3].T, density[2], atol=1e-6)
    single = make_counter("cnn_density", **{**FAST, "n_members": 1}).fit(IMAGES, POINTS)
    assert counter.n_parameters_ == 3 * single.n_parameters_ and len(single.best_epochs_) == 1


def test_sigma_candidates_from_the_dot_spacing():
    from featcell.cnn.density import _sigma_candidates
    from featcell.points import _dot_spacing

    grid = np.stack(np.meshgrid(np.arange(4, 60, 8.0), np.arange(4, 60, 8.0)), -1).reshape(-1, 2)
    # neighbours 8 px apart: the spacing's sigma is 2, half of it 1
    assert _dot_spacing([grid, grid[:5]]) == 8.0
    assert _sigma_candidates(8.0, (0.5, 1.0)) == [1.0, 2.0]
    # 4 px apart: half of 1 is clipped to 1, the repeat dropped; 80 px: clipped to 8
    assert _sigma_candidates(4.0, (0.5, 1.0)) == [1.0]
    assert _sigma_candidates(80.0, (1.0, 3.0)) == [8.0]
    assert _dot_spacing([grid[:1], np.empty((0, 2))]) is None
    assert _sigma_candidates(None, (0.5, 1.0)) == [2.0]  # no neighbours


def test_sigma_chosen_by_validation(fitted):
    # the default tries half and all of the dot spacing's sigma and keeps the lower
    # held-out count error; each candidate sees the same folds and patches
    assert len(fitted.cv_mae_) == 2 and fitted.validation_mae_ == min(fitted.cv_mae_.values())
    assert fitted.cv_mae_[fitted.sigma_] == fitted.validation_mae_
    assert {h["sigma"] for h in fitted.history_} == set(fitted.cv_mae_)
    for sigma, score in fitted.cv_mae_.items():
        alone = make_counter("cnn_density", sigma=sigma, **FAST).fit(IMAGES, POINTS)
        assert alone.cv_mae_ == {} and alone.validation_mae_ == pytest.approx(score, rel=1e-5)
        if sigma == fitted.sigma_:  # the kept ensemble is that candidate's
            np.testing.assert_allclose(alone.predict(IMAGES), fitted.predict(IMAGES), rtol=1e-5)
    spacing = make_counter("cnn_density", sigma_factors=[1.0], **FAST).fit(IMAGES, POINTS)
    assert spacing.cv_mae_ == {} and spacing.sigma_ == max(fitted.cv_mae_)


def _unet_parameters(n_channels, width, depth):
    """Trainable parameters of the documented U-Net: two 3x3 convolutions (no bias) with
    batch norm per block, ``width * 2**level`` channels, decoders on the upsampled level
    below and the skip, a 1x1 output convolution."""
    def block(n_in, n_out):
        return 9 * n_in * n_out + 9 * n_out * n_out + 4 * n_out

    sizes = [width * 2**level for level in range(depth + 1)]
    encoders = sum(block(a, b) for a, b in zip([n_channels] + sizes, sizes))
    decoders = sum(block(sizes[k + 1] + sizes[k], sizes[k]) for k in range(depth))
    return encoders + decoders + width + 1


def test_depth_from_the_dot_spacing():
    from featcell.cnn.density import _auto_depth, _receptive_field
    from featcell.points import _dot_spacing

    assert [_receptive_field(d) for d in (1, 2, 3, 4)] == [18, 44, 96, 200]
    grid = np.stack(np.meshgrid(np.arange(5.0), np.arange(5.0)), -1).reshape(-1, 2)
    # the fewest poolings whose field spans four spacings (44, 96, 200 px), at most 4
    spacings = [_dot_spacing([grid * s]) for s in (8, 11, 12, 24, 25, 50, 60)]
    assert spacings == [8, 11, 12, 24, 25, 50, 60]
    assert [_auto_depth(s) for s in spacings] == [2, 2, 3, 3, 4, 4, 4]
    assert _dot_spacing([grid[:1], np.empty((0, 2))]) is None and _auto_depth(None) == 2


def test_depth_sets_the_poolings_and_the_padding(fitted):
    assert fitted.depth_ == 2  # blobs about 5 px apart
    assert fitted.n_parameters_ == 3 * _unet_parameters(1, 4, 2)
    deep = make_counter("cnn_density", **{**FAST, "depth": 3, "n_members": 1, "sigma": 2.0,
                                          "test_time_flips": True}).fit(IMAGES, POINTS)
    assert deep.n_parameters_ == _unet_parameters(1, 4, 3)
    odd = IMAGES[0][:37, :35]  # padded to 40 x 40 for three poolings
    density = deep.predict_density([odd])[0]
    assert density.shape == (37, 35) and np.isfinite(density).all()
    np.testing.assert_allclose(deep.predict([odd]), density.sum(), rtol=1e-5)
    image = IMAGES[3][:40, :32]  # multiples of 8: the four flips are exact
    flipped = deep.predict_density([image, image[::-1], image[:, ::-1]])
    np.testing.assert_allclose(flipped[1][::-1], flipped[0], atol=1e-6)
    np.testing.assert_allclose(flipped[2][:, ::-1], flipped[0], atol=1e-6)


def test_bad_input():
    with pytest.raises(ValueError, match="count"):
        make_counter("cnn_density", **FAST).fit(IMAGES[:3], [2.0, 5.0, 8.0])
    with pytest.raises(ValueError, match="at least 2"):
        make_counter("cnn_density", **FAST).fit(IMAGES[:1], POINTS[:1])
    with pytest.raises(ValueError, match="n_members"):
        make_counter("cnn_density", **{**FAST, "n_members": 0}).fit(IMAGES, POINTS)
    with pytest.raises(ValueError, match="test_time_flips"):
        make_counter("cnn_density", **{**FAST, "test_time_flips": "rotations"}).fit(IMAGES, POINTS)
    for depth in (0, 6, 2.0):
        with pytest.raises(ValueError, match="depth"):
            make_counter("cnn_density", **{**FAST, "depth": depth}).fit(IMAGES, POINTS)
    with pytest.raises(ValueError, match="patch_size=8 is smaller than the 16"):
        make_counter("cnn_density", **{**FAST, "depth": 4, "patch_size": 8}).fit(IMAGES, POINTS)
    for factors in ([], [0.5, -1.0], "0.5", [True]):
        with pytest.raises(ValueError, match="sigma_factors"):
            make_counter("cnn_density", **{**FAST, "sigma_factors": factors}).fit(IMAGES, POINTS)
    for channels in ([], ["DNA"], [-5], [0.5], [1]):  # the images are grey: channel 0 only
        with pytest.raises(ValueError, match="channels"):
            make_counter("cnn_density", **{**FAST, "channels": channels}).fit(IMAGES, POINTS)
    with pytest.raises(ValueError, match="no pixels"):
        make_counter("cnn_density", **FAST).fit([np.zeros((0, 40)), *IMAGES[1:]], POINTS)


def test_no_calibration_on_held_out_images_without_objects():
    # the one validation image (random_state=8) is an empty field: nothing to calibrate on
    # (its true count 0 made the ratio 0, clipped to 0.5: every count halved)
    images, points = _blobs([0, 4, 6, 5, 7, 3])
    counter = make_counter("cnn_density", **{**FAST, "n_members": 1, "sigma": 2.0,
                                             "random_state": 8}).fit(images, points)
    assert counter.coef_ == 1.0


def test_saved_counter_round_trip(fitted, tmp_path):
    from featcell.persist import load_model, save_model

    path = save_model(fitted, tmp_path / "counter.featcell")
    np.testing.assert_allclose(load_model(path).predict(IMAGES[:2]), fitted.predict(IMAGES[:2]),
                               rtol=1e-5)


def test_cli_train_cnn_density_then_score_without_torch(tmp_path, capsys, monkeypatch):
    import pandas as pd
    import tifffile
    from test_cnn_trained import _run_without_torch

    from featcell import counting
    from featcell.cli import main

    (tmp_path / "img").mkdir()
    rows = ["image,row,col"]
    for i, (image, points) in enumerate(zip(IMAGES[:6], POINTS[:6], strict=True)):
        tifffile.imwrite(tmp_path / "img" / f"f{i}.tif", image.astype(np.float32))
        rows += [f"f{i}.tif,{r},{c}" for r, c in points]
    (tmp_path / "points.csv").write_text("\n".join(rows) + "\n")
    original = counting.make_counter

    def quick(method, **kwargs):  # the command line's network, trained briefly
        return original(method, **{**kwargs, **FAST})

    monkeypatch.setattr(counting, "make_counter", quick)
    model = tmp_path / "counter.featcell"
    code = main(["train", str(tmp_path / "img"), "--task", "counting", "--model", "cnn_density",
                 "--points", str(tmp_path / "points.csv"), "--cv", "2", "--group-by", "none",
                 "-o", str(model), "-q"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "game3" in out and model.is_file()
    # scoring needs only onnxruntime: the command line, in a process where torch cannot load
    result = _run_without_torch(
        tmp_path,
        f"""
        import sys
        from featcell.cli import main
        code = main(["score", {str(model)!r}, {str(tmp_path / "img")!r}, "-o", "counts.csv",
                     "--save-density", "maps", "-q"])
        assert "torch" not in sys.modules
        print("OK", code)
        """,
    )
    assert "OK 0" in result.stdout, result.stderr
    counts = pd.read_csv(tmp_path / "counts.csv").set_index("Metadata_ImageID")["Prediction"]
    assert len(counts) == 6
    density = tifffile.imread(tmp_path / "maps" / "f2_density.tif")
    assert density.shape == (40, 40) and abs(density.sum() - counts["f2.tif"]) < 1e-2
    # a counts-only model or missing dots: a one-line error (exit status 2)
    code = main(["train", str(tmp_path / "img"), "--task", "counting", "--model", "cnn_density",
                 "-o", str(tmp_path / "m2.featcell")])
    assert code == 2 and "--points" in capsys.readouterr().err
