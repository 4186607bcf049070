from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from joblib import parallel_config
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)

from featcell import CellSet
from featcell.features.colocalization import Colocalization

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# one 2x3 object with hand-picked intensities in two channels (exact in float32)
A = np.array([[1, 2, 3], [4, 5, 6]]) / 8
B = np.array([[2, 1, 6], [4, 7, 5]]) / 8


def _pair_cells(a=A, b=B):
    image = np.zeros((10, 10, 2))
    image[3:5, 3:6, 0] = a
    image[3:5, 3:6, 1] = b
    labels = np.zeros((10, 10), dtype=np.int32)
    labels[3:5, 3:6] = 1
    return CellSet.from_labels(image, labels, channels=["DNA", "PH3"])


def _row(cells, **params):
    return Colocalization(**params).set_output(transform="pandas").fit_transform(cells).iloc[0]


def _field(seed=0, n_channels=3):
    """Four blobs on a 64x64 field; channel 2 follows channel 1, channel 3 is independent."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :64]
    labels = np.zeros((64, 64), dtype=np.int32)
    for k, (cy, cx, r) in enumerate([(15, 15, 8), (15, 45, 10), (45, 20, 9), (48, 50, 6)], start=1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = k
    base = rng.integers(0, 256, (64, 64))
    follow = np.clip(base * 0.6 + rng.integers(0, 100, (64, 64)), 0, 255)
    other = rng.integers(0, 256, (64, 64))
    image = np.stack([base, follow, other][:n_channels], axis=-1).astype(np.uint8)
    return image, labels


def test_correlation_and_slope_by_hand():
    row = _row(_pair_cells(), features="correlation")
    a, b = A.ravel(), B.ravel()
    assert_allclose(row["Correlation_Correlation_DNA_PH3"], np.corrcoef(a, b)[0, 1])
    assert_allclose(row["Correlation_Slope_DNA_PH3"], np.polyfit(a, b, 1)[0])


def test_small_and_wide_range_intensities_keep_their_values():
    # values far below an 8-bit step (and an int32 image, scaled by 2**31 - 1) are not
    # snapped to the 8-bit grid: the correlation is numpy's on the same pixels
    rng = np.random.default_rng(0)
    labels = np.zeros((30, 30), dtype=np.int32)
    labels[5:25, 5:25] = 1
    a = rng.random((30, 30)) * 3e-5
    b = 0.5 * a + rng.random((30, 30)) * 1e-5
    ints = rng.integers(0, 1000, (30, 30, 2)).astype(np.int32)
    ints[..., 1] = ints[..., 0] // 2 + rng.integers(0, 50, (30, 30))
    for image in (np.stack([a, b], -1), ints):
        cells = CellSet.from_labels(image, labels, channels=["A", "B"])
        x, y = (image[..., c][labels == 1].astype(np.float32) for c in (0, 1))
        row = _row(cells, features=["correlation"])
        assert_allclose(row["Correlation_Correlation_A_B"], np.corrcoef(x, y)[0, 1], rtol=1e-6)


def test_threshold_coefficients_by_hand():
    row = _row(_pair_cells(), features=["overlap", "manders", "rwc"], threshold=50)
    a, b = A.ravel(), B.ravel()
    above_a, above_b = a >= 0.5 * a.max(), b >= 0.5 * b.max()  # 3/8 and 3.5/8
    both = above_a & above_b  # the last four pixels
    assert both.sum() == 4
    xy, xx, yy = (a * b)[both].sum(), (a * a)[both].sum(), (b * b)[both].sum()
    assert_allclose(row["Correlation_Overlap_DNA_PH3"], xy / np.sqrt(xx * yy))
    assert_allclose(row["Correlation_K_DNA_PH3"], xy / xx)
    assert_allclose(row["Correlation_K_PH3_DNA"], xy / yy)
    assert_allclose(row["Correlation_Manders_DNA_PH3"], a[both].sum() / a[above_a].sum())
    assert_allclose(row["Correlation_Manders_PH3_DNA"], b[both].sum() / b[above_b].sum())
    # dense ranks 0..5 in each channel; R = 6
    rank_a = np.argsort(np.argsort(a))
    rank_b = np.argsort(np.argsort(b))
    weight = (6 - np.abs(rank_a - rank_b)) / 6
    assert_allclose(row["Correlation_RWC_DNA_PH3"], (a * weight)[both].sum() / a[above_a].sum())
    assert_allclose(row["Correlation_RWC_PH3_DNA"], (b * weight)[both].sum() / b[above_b].sum())


def test_identical_channels():
    row = _row(_pair_cells(A, A), features=["correlation", "overlap", "manders", "rwc"])
    for name in ("Correlation", "Slope", "Overlap", "K", "Manders", "RWC"):
        assert_allclose(row[f"Correlation_{name}_DNA_PH3"], 1.0)


def test_no_pixel_above_both_thresholds_gives_zero():
    a = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    b = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    row = _row(_pair_cells(a, b), features=["overlap", "manders", "rwc"])
    assert (row.to_numpy(float) == 0).all()


def test_constant_channel_has_no_correlation():
    row = _row(_pair_cells(A, np.full((2, 3), 0.25)), features="correlation")
    assert np.isnan(row["Correlation_Correlation_DNA_PH3"])
    assert row["Correlation_Slope_DNA_PH3"] == 0  # b does not change with a
    row = _row(_pair_cells(np.full((2, 3), 0.25), B), features="correlation")
    assert np.isnan(row.to_numpy(float)).all()


def test_costes_half_colocalized_spots():
    yy, xx = np.mgrid[:40, :40]
    labels = ((yy - 20) ** 2 + (xx - 20) ** 2 <= 15**2).astype(np.int32)
    rng = np.random.default_rng(1)
    spots = (yy % 8 < 3) & (xx % 8 < 3)
    half = spots & (xx < 20)  # PH3 marks the spots of the left half only
    dna = (rng.integers(5, 60, (40, 40)) + 180 * spots).astype(np.uint8)
    ph3 = (rng.integers(5, 60, (40, 40)) + 150 * half).astype(np.uint8)
    cells = CellSet.from_labels(np.stack([dna, ph3], axis=-1), labels, channels=["DNA", "PH3"])
    row = _row(cells, features="costes")
    inside = labels > 0
    expected = (
        dna[inside & half].sum() / dna[inside & spots].sum()
    )  # DNA spot signal shared with PH3
    assert_allclose(row["Correlation_Costes_DNA_PH3"], expected, atol=0.01)
    assert row["Correlation_Costes_PH3_DNA"] > 0.95
    # identical channels: the background never decorrelates, Costes is undefined (as in CellProfiler)
    same = CellSet.from_labels(np.stack([dna, dna], axis=-1), labels, channels=["DNA", "PH3"])
    assert np.isnan(_row(same, features="costes").to_numpy(float)).all()


def test_names_pairs_and_family_order():
    image, labels = _field()
    cells = CellSet.from_labels(image, labels, channels=["DNA", "PH3", "Actin"])
    t = Colocalization().fit(cells)
    names = list(t.get_feature_names_out())
    assert t.pairs_ == [("DNA", "PH3"), ("DNA", "Actin"), ("PH3", "Actin")]
    assert len(names) == 3 * 11
    assert names[:3] == [
        "Correlation_Correlation_DNA_PH3",
        "Correlation_Slope_DNA_PH3",
        "Correlation_Correlation_DNA_Actin",
    ]
    assert names[-1] == "Correlation_Costes_Actin_PH3"
    out = t.transform(cells)
    assert out.shape == (4, 33)
    one = Colocalization(features=["rwc", "correlation"], pairs=[("PH3", "Actin")]).fit(cells)
    sub = list(one.get_feature_names_out())
    assert sub[0] == "Correlation_Correlation_PH3_Actin"  # output follows family order
    assert_array_equal(one.transform(cells), out[:, [names.index(n) for n in sub]])
    # the followed channel correlates, the independent one does not
    corr = pd.DataFrame(out, columns=names)
    assert (corr["Correlation_Correlation_DNA_PH3"] > 0.5).all()
    assert (corr["Correlation_Correlation_DNA_Actin"].abs() < 0.3).all()


def test_rank_paths_agree():
    # 8-bit intensities are ranked by grid bins with scale=255, by sorting otherwise
    image, labels = _field()
    cells = CellSet.from_labels(image, labels, channels=["DNA", "PH3", "Actin"])
    binned = Colocalization(features="rwc").fit_transform(cells)
    sorted_ = Colocalization(features="rwc", scale=1000).fit_transform(cells)
    assert_allclose(binned, sorted_, rtol=1e-4)


def test_channels_restrict_pairs():
    image, labels = _field()
    cells = CellSet.from_labels(image, labels, channels=["DNA", "PH3", "Actin"])
    t = Colocalization(channels=["Actin", "DNA"], features="manders").fit(cells)
    assert t.pairs_ == [("Actin", "DNA")]


def test_compartment_pandas_pipeline_and_n_jobs():
    image, labels = _field()
    cells = CellSet.from_labels(image, labels, channels=["DNA", "PH3", "Actin"])
    table = Colocalization(compartment="Cells").set_output(transform="pandas").fit_transform(cells)
    assert table.columns[0] == "Cells_Correlation_Correlation_DNA_PH3"
    pipe = make_pipeline(Colocalization(features=["correlation", "manders"]), StandardScaler())
    assert pipe.fit_transform(cells).shape == (4, 12)
    big = CellSet.concat([cells] * 150)  # 600 cells: two chunks
    one = Colocalization().fit_transform(big)
    with parallel_config(backend="threading"):
        assert_array_equal(Colocalization(n_jobs=2).fit_transform(big), one)
    assert_array_equal(one[:4], one[-4:])


def test_empty_cellset_and_one_pixel_object():
    image, labels = _field()
    cells = CellSet.from_labels(image, labels, channels=["DNA", "PH3", "Actin"])
    t = Colocalization().fit(cells)
    assert t.transform(cells[[]]).shape == (0, 33)
    dot = np.zeros((7, 7), dtype=np.int32)
    dot[3, 3] = 1
    single = CellSet.from_labels(np.full((7, 7, 2), 100, np.uint8), dot, channels=["DNA", "PH3"])
    row = _row(single)
    # one pixel: no correlation, no Costes regression; thresholded coefficients are 1
    assert np.isnan(row["Correlation_Correlation_DNA_PH3"]) and np.isnan(
        row["Correlation_Slope_DNA_PH3"]
    )
    assert np.isnan(row["Correlation_Costes_DNA_PH3"])
    assert_allclose(
        row[
            [
                "Correlation_Overlap_DNA_PH3",
                "Correlation_Manders_DNA_PH3",
                "Correlation_RWC_DNA_PH3",
            ]
        ].to_numpy(float),
        1.0,
    )


def test_sklearn_api():
    for check in (
        check_no_attributes_set_in_init,
        check_get_params_invariance,
        check_set_params,
        check_parameters_default_constructible,
    ):
        check("Colocalization", Colocalization())
    assert clone(Colocalization(threshold=20)).threshold == 20


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"threshold": 150}, "threshold"),
        ({"scale": 1}, "scale"),
        ({"pairs": [("DNA", "GFP")]}, "GFP"),
        ({"pairs": [("DNA", "DNA")]}, "itself"),
        ({"pairs": [("DNA", "PH3"), ("PH3", "DNA")]}, "twice"),
        ({"pairs": [("DNA", "PH3"), ("DNA", "PH3")]}, "twice"),
        ({"pairs": ["DNA"]}, "tuples"),
        ({"pairs": []}, "empty"),
        ({"channels": "DNA"}, "at least two channels"),
        ({"features": "pearson"}, "unknown feature families"),
    ],
)
def test_invalid_parameters(params, match):
    image, labels = _field(n_channels=2)
    cells = CellSet.from_labels(image, labels, channels=["DNA", "PH3"])
    with pytest.raises(ValueError, match=match):
        Colocalization(**params).fit(cells)


def test_costes_needs_unit_range():
    image, labels = _field(n_channels=2)
    cells = CellSet.from_labels(image.astype(np.float32), labels, channels=["DNA", "PH3"])  # 0..255
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Colocalization(features="costes").fit_transform(cells)
    assert Colocalization(features="manders").fit_transform(cells).shape == (4, 2)


def _check_against_cp_measure(channels, labels):
    import warnings

    from cp_measure.core import measurecolocalization as mc

    names = list(channels)
    cells = CellSet.from_labels([channels[n] for n in names], labels, channels=names)
    ours = Colocalization().set_output(transform="pandas").fit_transform(cells)
    pairing = {
        "Correlation_Correlation_{a}_{b}": "Correlation_Pearson",
        "Correlation_Slope_{a}_{b}": "Correlation_Slope",
        "Correlation_Overlap_{a}_{b}": "Correlation_Overlap",
        "Correlation_K_{a}_{b}": "Correlation_K_1",
        "Correlation_K_{b}_{a}": "Correlation_K_2",
        "Correlation_Manders_{a}_{b}": "Correlation_Manders_1",
        "Correlation_Manders_{b}_{a}": "Correlation_Manders_2",
        "Correlation_RWC_{a}_{b}": "Correlation_RWC_1",
        "Correlation_RWC_{b}_{a}": "Correlation_RWC_2",
        "Correlation_Costes_{a}_{b}": "Correlation_Costes_1",
        "Correlation_Costes_{b}_{a}": "Correlation_Costes_2",
    }
    compared = 0
    for a, b in Colocalization().fit(cells).pairs_:
        x, y = channels[a], channels[b]
        theirs = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for fn in (
                mc.get_correlation_pearson,
                mc.get_correlation_overlap,
                mc.get_correlation_manders_fold,
                mc.get_correlation_rwc,
            ):
                theirs.update(fn(x, y, labels))
            theirs.update(mc.get_correlation_costes(x, y, labels, scale_max=255))
        for template, key in pairing.items():
            name = template.format(a=a, b=b)
            assert_allclose(
                ours[name], np.asarray(theirs[key], float), rtol=1e-9, atol=1e-12, err_msg=name
            )
            compared += 1
    return compared


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_matches_cp_measure_on_synthetic_field():
    pytest.importorskip("cp_measure")
    image, labels = _field(seed=5)
    channels = {n: image[..., i] / 255.0 for i, n in enumerate(["DNA", "PH3", "Actin"])}
    assert _check_against_cp_measure(channels, labels) == 33


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_matches_cp_measure_on_real_ht29():
    pytest.importorskip("cp_measure")
    root = DATA / "viability" / "ht29_ph3"
    if not root.is_dir():
        pytest.skip(f"real data not found at {root}")
    from skimage.filters import threshold_otsu
    from skimage.measure import label

    from featcell.io import read_image

    planes = [np.asarray(read_image(p)) for p in sorted(root.glob("*d[012].tif"))]
    labels = label(planes[0] > threshold_otsu(planes[0])).astype(np.int32)
    crop = (slice(0, 256), slice(0, 256))  # a quarter of the field keeps the test fast
    labels = label(labels[crop] > 0).astype(np.int32)
    channels = {n: p[crop] / 255.0 for n, p in zip(["DNA", "PH3", "Cell"], planes)}
    assert _check_against_cp_measure(channels, labels) == 33


def test_costes_on_float_intensities_names_a_way_out_for_cell_features():
    """Float images beyond [0, 1] stopped CellFeatures() with advice ("leave 'costes' out
    of features") that CellFeatures has no parameter for."""
    from featcell import CellFeatures

    rng = np.random.default_rng(0)
    cells = CellSet.from_crops(rng.uniform(0, 500, (3, 2, 12, 12)), channels=["A", "B"])
    with pytest.raises(ValueError, match=r"CellFeatures\(families=\[...\] without "
                                         r"'colocalization'\)"):
        CellFeatures().fit_transform(cells)
    families = ["morphology", "intensity", "texture"]
    assert CellFeatures(families=families).fit_transform(cells).shape[0] == 3
