from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from joblib import parallel_config
from numpy.testing import assert_allclose, assert_array_equal
from skimage.segmentation import find_boundaries
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
from featcell.features.intensity import Intensity

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# a 4x4 square whose columns hold 1, 2, 3, 4 (hand-computed values below)
SQUARE_IMAGE = np.zeros((20, 20))
SQUARE_IMAGE[4:8, 4:8] = [[1, 2, 3, 4]] * 4
SQUARE_LABELS = np.zeros((20, 20), dtype=np.int32)
SQUARE_LABELS[4:8, 4:8] = 1


def _square(**params):
    cells = CellSet.from_labels(SQUARE_IMAGE, SQUARE_LABELS, channels=["DNA"])
    return Intensity(**params).set_output(transform="pandas").fit_transform(cells).iloc[0]


def _field(seed=0, shape=(64, 64), n_channels=1):
    """Three blobs (one cut by the border, one with a notch) on a noisy background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, dtype=np.int32)
    labels[(yy - 20) ** 2 + (xx - 20) ** 2 <= 64] = 1
    blob = ((yy - 44) / 9.0) ** 2 + ((xx - 40) / 6.0) ** 2 <= 1
    blob[40:46, 40:47] = False  # a concavity, for the geodesic distance
    labels[blob] = 2
    labels[:7, 45:60] = 3  # touches the top border
    image = rng.random(shape + (n_channels,)) * 0.2
    image[labels > 0] += rng.random((int((labels > 0).sum()), n_channels)) * 0.8
    return image.astype(np.float32), labels


def test_whole_object_statistics_by_hand():
    row = _square(features="intensity")
    assert_allclose(row["Intensity_IntegratedIntensity_DNA"], 40.0)
    assert_allclose(row["Intensity_MeanIntensity_DNA"], 2.5)
    assert_allclose(row["Intensity_StdIntensity_DNA"], np.sqrt(1.25))  # population std
    assert_allclose(row["Intensity_MinIntensity_DNA"], 1.0)
    assert_allclose(row["Intensity_MaxIntensity_DNA"], 4.0)
    # CellProfiler interpolates at n*q of the 16 sorted values [1]*4 + [2]*4 + [3]*4 + [4]*4
    assert_allclose(row["Intensity_LowerQuartileIntensity_DNA"], 2.0)
    assert_allclose(row["Intensity_MedianIntensity_DNA"], 3.0)
    assert_allclose(row["Intensity_UpperQuartileIntensity_DNA"], 4.0)
    # |x - 3| sorted: [0]*4 + [1]*8 + [2]*4, position 8
    assert_allclose(row["Intensity_MADIntensity_DNA"], 1.0)


def test_linear_quantiles_by_hand():
    row = _square(features="intensity", quantile_method="linear")
    assert_allclose(row["Intensity_LowerQuartileIntensity_DNA"], 1.75)  # position 3.75
    assert_allclose(row["Intensity_MedianIntensity_DNA"], 2.5)
    assert_allclose(row["Intensity_UpperQuartileIntensity_DNA"], 3.25)
    assert_allclose(row["Intensity_MADIntensity_DNA"], 1.0)  # |x - 2.5| is 0.5 or 1.5


def test_edge_and_mass_by_hand():
    row = _square(features=["edge", "mass"])
    edge = np.array([1, 2, 3, 4, 1, 2, 3, 4, 1, 4, 1, 4], dtype=float)  # the 12 outline pixels
    assert_allclose(row["Intensity_IntegratedIntensityEdge_DNA"], edge.sum())
    assert_allclose(row["Intensity_MeanIntensityEdge_DNA"], edge.mean())
    assert_allclose(row["Intensity_StdIntensityEdge_DNA"], edge.std())
    assert_allclose(row["Intensity_MinIntensityEdge_DNA"], 1.0)
    assert_allclose(row["Intensity_MaxIntensityEdge_DNA"], 4.0)
    # intensity-weighted column 80/40 = 2 vs centroid 1.5; rows are uniform
    assert_allclose(row["Intensity_CenterMassIntensityOffset_X_DNA"], 0.5)
    assert_allclose(row["Intensity_CenterMassIntensityOffset_Y_DNA"], 0.0, atol=1e-12)
    assert_allclose(row["Intensity_MassDisplacement_DNA"], 0.5)
    # brightest pixel: first 4 in row-major order, at (0, 3) of the square
    assert_allclose(row["Intensity_MaxIntensityOffset_X_DNA"], 1.5)
    assert_allclose(row["Intensity_MaxIntensityOffset_Y_DNA"], -1.5)


def test_radial_uniform_disk():
    yy, xx = np.mgrid[:41, :41]
    labels = ((yy - 20) ** 2 + (xx - 20) ** 2 <= 15**2).astype(np.int32)
    image = np.where(labels > 0, 0.5, 0.0)
    cells = CellSet.from_labels(image, labels, channels=["DNA"])
    row = (
        Intensity(features="radial", n_rings=3)
        .set_output(transform="pandas")
        .fit_transform(cells)
        .iloc[0]
    )
    frac = row[[f"RadialDistribution_FracAtD_DNA_{k}of3" for k in (1, 2, 3)]].to_numpy(float)
    assert_allclose(frac.sum(), 1.0)
    assert np.all(np.diff(frac) > 0)  # outer rings hold more pixels
    # uniform intensity: intensity fraction = pixel fraction, wedges equal
    assert_allclose(row.filter(like="MeanFrac").to_numpy(float), 1.0)
    assert_allclose(row.filter(like="RadialCV").to_numpy(float), 0.0, atol=1e-12)


def test_radial_bright_centre():
    yy, xx = np.mgrid[:41, :41]
    r2 = (yy - 20) ** 2 + (xx - 20) ** 2
    labels = (r2 <= 15**2).astype(np.int32)
    image = np.where(labels > 0, np.exp(-r2 / 50.0), 0.0)
    cells = CellSet.from_labels(image, labels, channels=["DNA"])
    row = Intensity(features="radial").set_output(transform="pandas").fit_transform(cells).iloc[0]
    mean_frac = row.filter(like="MeanFrac").to_numpy(float)
    assert mean_frac[0] > 1 > mean_frac[-1]
    assert np.all(np.diff(mean_frac) < 0)


def test_names_shapes_and_family_order():
    image, labels = _field(n_channels=2)
    cells = CellSet.from_labels(image, labels, channels=["DNA", "Actin"])
    t = Intensity(n_rings=2).fit(cells)
    names = list(t.get_feature_names_out())
    assert len(names) == 2 * (9 + 5 + 5 + 3 * 2)
    assert names[0] == "Intensity_IntegratedIntensity_DNA"
    assert names[9] == "Intensity_IntegratedIntensity_Actin"
    assert "Intensity_CenterMassIntensityOffset_X_Actin" in names
    assert names[-1] == "RadialDistribution_RadialCV_Actin_2of2"
    out = t.transform(cells)
    assert out.shape == (3, len(names)) and out.dtype == np.float64
    assert np.isfinite(out).all()
    # selecting families or channels gives the matching columns of the full table
    part = Intensity(features=["radial", "edge"], channels="Actin", n_rings=2).fit(cells)
    sub = list(part.get_feature_names_out())
    assert sub[0] == "Intensity_IntegratedIntensityEdge_Actin"  # output follows family order
    assert_array_equal(part.transform(cells), out[:, [names.index(n) for n in sub]])


def test_compartment_prefix_and_pandas_output():
    image, labels = _field()
    cells = CellSet.from_labels(image, labels, channels=["DNA"])
    table = Intensity(compartment="Nuclei").set_output(transform="pandas").fit_transform(cells)
    assert isinstance(table, pd.DataFrame)
    assert table.columns[0] == "Nuclei_Intensity_IntegratedIntensity_DNA"
    assert len(table) == 3


def test_pipeline_and_n_jobs():
    image, labels = _field()
    cells = CellSet.from_labels(image, labels, channels=["DNA"])
    pipe = make_pipeline(Intensity(), StandardScaler())
    assert pipe.fit_transform(cells).shape == (3, 9 + 5 + 5 + 12)
    big = CellSet.concat([cells] * 200)  # 600 cells: two chunks
    one = Intensity().fit_transform(big)
    with parallel_config(backend="threading"):  # same chunking, no process start-up
        assert_array_equal(Intensity(n_jobs=2).fit_transform(big), one)
    assert_array_equal(one[:3], one[597:])


def test_empty_cellset():
    image, labels = _field()
    cells = CellSet.from_labels(image, labels, channels=["DNA"])
    t = Intensity().fit(cells)
    assert t.transform(cells[[]]).shape == (0, len(t.get_feature_names_out()))


def test_one_pixel_object():
    image = np.zeros((9, 9))
    image[4, 4] = 0.7
    labels = np.zeros((9, 9), dtype=np.int32)
    labels[4, 4] = 1
    cells = CellSet.from_labels(image, labels, channels=["DNA"])
    row = Intensity(n_rings=2).set_output(transform="pandas").fit_transform(cells).iloc[0]
    for name in ("Integrated", "Mean", "Min", "Max", "LowerQuartile", "Median", "UpperQuartile"):
        assert_allclose(row[f"Intensity_{name}Intensity_DNA"], 0.7, rtol=1e-6)
    assert row["Intensity_StdIntensity_DNA"] == 0 and row["Intensity_MADIntensity_DNA"] == 0
    # the pixel is its own outline; no displacement; all of it in the first ring
    assert_allclose(row["Intensity_IntegratedIntensityEdge_DNA"], 0.7, rtol=1e-6)
    assert row["Intensity_MassDisplacement_DNA"] == 0
    assert (
        row["RadialDistribution_FracAtD_DNA_1of2"] == 1
        and row["RadialDistribution_FracAtD_DNA_2of2"] == 0
    )
    assert row["RadialDistribution_RadialCV_DNA_1of2"] == 0


def test_zero_intensity_object_has_zero_radial_cv():
    # CellProfiler's masked division leaves sd (0) where a ring's mean is 0, not NaN
    labels = np.zeros((20, 20), dtype=np.int32)
    labels[2:10, 2:10] = 1
    cells = CellSet.from_labels(np.zeros((20, 20)), labels, channels=["DNA"])
    row = Intensity(features="radial").set_output(transform="pandas").fit_transform(cells).iloc[0]
    assert [row[f"RadialDistribution_RadialCV_DNA_{k}of4"] for k in range(1, 5)] == [0.0] * 4


def test_zero_intensity_object_has_no_centre_of_mass():
    labels = np.zeros((12, 12), dtype=np.int32)
    labels[3:7, 3:7] = 1
    cells = CellSet.from_labels(np.zeros((12, 12)), labels, channels=["DNA"])
    row = Intensity(features="mass").set_output(transform="pandas").fit_transform(cells).iloc[0]
    assert np.isnan(row["Intensity_MassDisplacement_DNA"])
    assert np.isnan(row["Intensity_CenterMassIntensityOffset_X_DNA"])
    assert np.isfinite(row["Intensity_MaxIntensityOffset_X_DNA"])


def test_border_object_edge_matches_whole_image_outline():
    image, labels = _field()
    image = image[..., 0]
    cells = CellSet.from_labels(image, labels, channels=["DNA"])
    assert cells.metadata["Metadata_TouchesBorder"].tolist() == [False, False, True]
    got = Intensity(features="edge").fit_transform(cells)
    outline = find_boundaries(labels, mode="inner")  # CellProfiler's outline
    for i, label in enumerate((1, 2, 3)):
        edge = image[(labels == label) & outline]
        assert_allclose(got[i, 0], edge.sum(dtype=np.float64), rtol=1e-6)
        assert_allclose(got[i, 3:], [edge.min(), edge.max()])
    # with no context margin an interior cell keeps its outline at the crop's side
    tight = CellSet.from_labels(image, labels, channels=["DNA"], margin=0)
    assert_allclose(Intensity(features="edge").fit_transform(tight)[:2], got[:2])


def test_sklearn_api():
    for check in (
        check_no_attributes_set_in_init,
        check_get_params_invariance,
        check_set_params,
        check_parameters_default_constructible,
    ):
        check("Intensity", Intensity())
    assert clone(Intensity(n_rings=2)).n_rings == 2


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"n_rings": 0}, "n_rings"),
        ({"quantile_method": "nearest"}, "quantile_method"),
        ({"features": "texture"}, "unknown feature families"),
        ({"channels": ["GFP"]}, "GFP"),
        ({"compartment": "Nu clei"}, "compartment"),
    ],
)
def test_invalid_parameters(params, match):
    image, labels = _field()
    cells = CellSet.from_labels(image, labels, channels=["DNA"])
    with pytest.raises(ValueError, match=match):
        Intensity(**params).fit(cells)


def test_rejects_non_cellset():
    with pytest.raises(TypeError, match="CellSet"):
        Intensity().fit(np.zeros((10, 10)))


def _cp_measure_table(image, labels):
    from cp_measure.core.measureobjectintensity import get_intensity
    from cp_measure.core.measureobjectintensitydistribution import get_radial_distribution

    table = get_intensity(labels, image, legacy=True)
    table.update(get_radial_distribution(labels, image))
    return table


def _check_against_cp_measure(image, labels):
    pixels = image.astype(np.float32).astype(np.float64)
    cells = CellSet.from_labels(pixels, labels, channels=["DNA"])
    ours = Intensity().set_output(transform="pandas").fit_transform(cells)
    theirs = _cp_measure_table(pixels, labels)
    compared = 0
    for name in ours.columns:
        key = name.replace("_DNA", "")
        if key in theirs:
            assert_allclose(ours[name], theirs[key], rtol=1e-6, atol=1e-9, err_msg=name)
            compared += 1
    for axis, centre in (("X", "Metadata_Location_Center_X"), ("Y", "Metadata_Location_Center_Y")):
        for what in ("CenterMassIntensity", "MaxIntensity"):
            expected = np.asarray(theirs[f"Location_{what}_{axis}"]) - cells.metadata[centre]
            assert_allclose(ours[f"Intensity_{what}Offset_{axis}_DNA"], expected, atol=1e-9)
            compared += 1
    return compared


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_matches_cp_measure_on_synthetic_field():
    pytest.importorskip("cp_measure")
    image, labels = _field(seed=4)
    assert _check_against_cp_measure(image[..., 0], labels) == 31


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_matches_cp_measure_on_cells_cut_on_opposite_sides():
    # the image border is not background: a cell spanning the image's height has its
    # nearest background to the left and right only
    pytest.importorskip("cp_measure")
    labels = np.zeros((12, 40), np.int32)
    labels[:, 3:30] = 1
    labels[4:8, 33:37] = 2
    labels[3:9, :2] = 3
    image = np.random.default_rng(0).random((12, 40))
    assert _check_against_cp_measure(image, labels) == 31


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_matches_cp_measure_on_real_nuclei():
    pytest.importorskip("cp_measure")
    if not DATA.is_dir():
        pytest.skip(f"real data not found at {DATA}")
    from featcell.io import read_image, read_labels

    root = DATA / "cell_line" / "coelho2009"
    name = "nih3t3_dna-0.png"
    image = np.asarray(read_image(root / "images" / name), dtype=np.float64)
    image = (image[..., 0] if image.ndim == 3 else image) / 255.0
    labels = read_labels(root / "labels" / name).astype(np.int32)
    assert labels.max() == len(np.unique(labels)) - 1  # contiguous, as cp_measure needs
    assert _check_against_cp_measure(image, labels) == 31
