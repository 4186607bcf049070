"""Tests of featcell.features.morphology.Morphology (CellProfiler's MeasureObjectSizeShape)."""

import pickle

import numpy as np
import pandas as pd
import pytest
from joblib import parallel_config
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)

from featcell.cells import CellSet
from featcell.features.morphology import Morphology, zernike_indices

N_FEATURES = 19 + 2 + 30 + 50


def _disk(shape, centre, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def _ellipse(shape, centre, semi_rows, semi_cols):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((yy - centre[0]) / semi_rows) ** 2 + ((xx - centre[1]) / semi_cols) ** 2 <= 1


def _cells(labels, margin=8):
    return CellSet.from_labels(np.ones(labels.shape), labels, channels=["DNA"], margin=margin)


def _table(labels, **params):
    transformer = Morphology(**params).set_output(transform="pandas")
    table = transformer.fit_transform(_cells(labels))
    return table.rename(columns=lambda name: name.removeprefix("AreaShape_"))


# one 10x10 square, a disk of radius 20, a 40x20 ellipse, an annulus, a 9x9 square
SHAPES = np.zeros((200, 200), dtype=np.int32)
SHAPES[10:20, 10:20] = 1
SHAPES[_disk(SHAPES.shape, (60, 60), 20)] = 2
SHAPES[_ellipse(SHAPES.shape, (60, 150), 20, 10)] = 3
SHAPES[_disk(SHAPES.shape, (150, 60), 15) & ~_disk(SHAPES.shape, (150, 60), 7)] = 4
SHAPES[140:149, 140:149] = 5


@pytest.fixture(scope="module")
def shapes():
    return _table(SHAPES)


def test_square(shapes):
    square = shapes.iloc[0]
    assert square["Area"] == 100
    assert square["BoundingBoxArea"] == 100
    assert square["ConvexArea"] == 100
    assert square["Perimeter"] == 36  # 4 (s - 1) border pixels, each of weight 1
    assert square["Extent"] == 1 and square["Solidity"] == 1
    assert square["EulerNumber"] == 1
    # Feret and the enclosing circle use the hull of the pixel centres (side s - 1)
    assert_allclose(square["MinFeretDiameter"], 9)
    assert_allclose(square["MaxFeretDiameter"], 9 * np.sqrt(2))
    # sum over 10 rows of (i - 4.5)**2 times 10 columns
    assert_allclose(square["CentralMoment_2_0"], 10 * 10 * 99 / 12)
    assert_allclose(square["CentralMoment_0_2"], 825)
    assert_allclose(square["SpatialMoment_1_0"], 10 * 45)
    assert_allclose(square["HuMoment_0"], 2 * 825 / 100**2)
    assert_allclose(square["InertiaTensor_0_0"], 8.25)
    assert_allclose(square["InertiaTensorEigenvalues_1"], 8.25)
    assert_allclose(square["Eccentricity"], 0, atol=1e-12)


def test_square_radii(shapes):
    square = shapes.iloc[4]  # 9 x 9: distance to the outside is min(i + 1, j + 1, 9 - i, 9 - j)
    assert square["MaximumRadius"] == 5
    assert_allclose(square["MeanRadius"], (32 * 1 + 24 * 2 + 16 * 3 + 8 * 4 + 1 * 5) / 81)
    assert square["MedianRadius"] == 2


def test_disk(shapes):
    disk = shapes.iloc[1]
    assert_allclose(disk["Area"], np.pi * 20**2, rtol=0.01)
    # scikit-image's (CellProfiler's) border estimator overestimates circles by ~5%
    assert_allclose(disk["Perimeter"], 2 * np.pi * 20, rtol=0.06)
    assert_allclose(disk["PerimeterCrofton"], 2 * np.pi * 20, rtol=0.03)
    assert_allclose(disk["FormFactor"], 1, atol=0.1)
    assert disk["Eccentricity"] < 0.05
    assert_allclose(disk["MajorAxisLength"], 40, rtol=0.02)
    assert_allclose(disk["MaxFeretDiameter"], 40, rtol=0.01)
    assert_allclose(disk["MinFeretDiameter"], 40, rtol=0.03)
    assert_allclose(disk["MaximumRadius"], 20, atol=1.5)
    assert disk["EulerNumber"] == 1
    # a full disk is Zernike polynomial (0, 0) alone
    assert_allclose(disk["Zernike_0_0"], 1, atol=0.01)
    others = [f"Zernike_{n}_{m}" for n, m in zernike_indices(9)[1:]]
    assert disk[others].abs().max() < 0.02


def test_ellipse(shapes):
    ellipse = shapes.iloc[2]  # semi-axes 20 (rows) and 10 (columns)
    assert_allclose(ellipse["MajorAxisLength"], 40, rtol=0.02)
    assert_allclose(ellipse["MinorAxisLength"], 20, rtol=0.03)
    assert_allclose(ellipse["Eccentricity"], np.sqrt(1 - 0.5**2), atol=0.01)
    assert_allclose(ellipse["Orientation"], 0, atol=1e-6)  # major axis along the rows
    wide = _table(SHAPES.T)
    assert_allclose(abs(wide.iloc[2]["Orientation"]), 90, atol=1e-6)


def test_annulus(shapes):
    annulus = shapes.iloc[3]
    assert annulus["EulerNumber"] == 0
    hole = _disk(SHAPES.shape, (150, 60), 7).sum()
    assert annulus["FilledArea"] == annulus["Area"] + hole
    assert annulus["Solidity"] < 0.85


def test_names_and_pandas_output():
    transformer = Morphology().fit(_cells(SHAPES))
    names = list(transformer.get_feature_names_out())
    assert len(names) == N_FEATURES == len(set(names))
    for name in (
        "AreaShape_Area",
        "AreaShape_FormFactor",
        "AreaShape_MaxFeretDiameter",
        "AreaShape_Zernike_3_1",
        "AreaShape_HuMoment_0",
        "AreaShape_CentralMoment_1_2",
        "AreaShape_NormalizedMoment_2_0",
        "AreaShape_InertiaTensor_0_1",
    ):
        assert name in names
    assert not any("Center" in n or "BoundingBoxM" in n for n in names)  # metadata
    table = transformer.set_output(transform="pandas").transform(_cells(SHAPES))
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == names and table.shape == (5, N_FEATURES)
    prefixed = Morphology(features="feret", compartment="Nuclei").fit(_cells(SHAPES))
    assert list(prefixed.get_feature_names_out()) == [
        "Nuclei_AreaShape_MinFeretDiameter",
        "Nuclei_AreaShape_MaxFeretDiameter",
    ]


def test_family_selection():
    cells = _cells(SHAPES)
    everything = Morphology().fit(cells)
    full = pd.DataFrame(everything.transform(cells), columns=everything.get_feature_names_out())
    for families in ("zernike", ["moments", "feret"], ["sizeshape"]):
        part = Morphology(features=families).fit(cells)
        names = part.get_feature_names_out()
        assert_allclose(part.transform(cells), full[names].to_numpy())
    assert list(Morphology(features=["moments", "feret"]).fit(cells).families_) == [
        "feret",
        "moments",
    ]
    low = Morphology(features="zernike", zernike_order=3).fit(cells)
    assert list(low.get_feature_names_out()) == [
        f"AreaShape_Zernike_{n}_{m}" for n, m in [(0, 0), (1, 1), (2, 0), (2, 2), (3, 1), (3, 3)]
    ]
    assert_allclose(low.transform(cells), full[low.get_feature_names_out()].to_numpy())


@pytest.mark.parametrize(
    "params, match",
    [
        ({"zernike_order": -1}, "zernike_order"),
        ({"zernike_order": 2.5}, "zernike_order"),
        ({"features": "texture"}, "unknown feature families"),
        ({"compartment": "Nu clei"}, "compartment"),
    ],
)
def test_invalid_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        Morphology(**params).fit(_cells(SHAPES))


def test_input_checks():
    with pytest.raises(TypeError, match="CellSet"):
        Morphology().fit(SHAPES)
    fitted = Morphology().fit(_cells(SHAPES))
    other = CellSet.from_labels(np.ones((2, 200, 200)), SHAPES, channels=["A", "B"], channel_axis=0)
    with pytest.raises(ValueError, match="channels"):
        fitted.transform(other)


def test_sklearn_api():
    for check in (
        check_no_attributes_set_in_init,
        check_get_params_invariance,
        check_set_params,
        check_parameters_default_constructible,
    ):
        check("Morphology", Morphology())
    assert clone(Morphology(zernike_order=4)).zernike_order == 4


def test_pipeline():
    rng = np.random.default_rng(0)
    labels = np.zeros((300, 300), dtype=np.int32)
    y = []
    for k in range(36):
        row, col = divmod(k, 6)
        if k % 2:
            mask = _disk(labels.shape, (25 + 50 * row, 25 + 50 * col), rng.integers(8, 14))
        else:
            mask = _ellipse(labels.shape, (25 + 50 * row, 25 + 50 * col), 18, rng.integers(5, 8))
        labels[mask] = k + 1
        y.append(k % 2)
    model = make_pipeline(
        Morphology(features=["sizeshape", "feret"]), StandardScaler(), LogisticRegression()
    )
    model.fit(_cells(labels), y)
    assert model.score(_cells(labels), y) == 1.0


def _many_objects(n, seed=0):
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    labels = np.zeros((side * 16, side * 16), dtype=np.int32)
    for k in range(n):
        row, col = divmod(k, side)
        blob = rng.random((12, 12)) < 0.6
        blob[5:8, 5:8] = True
        labels[row * 16 + 2 : row * 16 + 14, col * 16 + 2 : col * 16 + 14][blob] = k + 1
    return labels


def test_n_jobs_and_chunks_agree():
    labels = _many_objects(600)  # more than one chunk of 512 cells
    cells = _cells(labels)
    one = Morphology(n_jobs=1).fit_transform(cells)
    # threads rather than processes keep the test fast; the work split is the same
    with parallel_config(backend="threading"):
        two = Morphology(n_jobs=2).fit_transform(cells)
    assert_allclose(one, two, rtol=1e-12, atol=1e-15)
    restored = pickle.loads(pickle.dumps(Morphology().fit(cells)))
    assert_allclose(restored.transform(cells[:5]), one[:5], rtol=1e-12, atol=1e-15)
    # each cell on its own gives the same values
    assert_allclose(Morphology().fit_transform(cells[[0, 599]]), one[[0, 599]], rtol=1e-12)


def test_margin_does_not_matter():
    labels = _many_objects(20, seed=3)
    assert_allclose(
        Morphology().fit_transform(_cells(labels, margin=0)),
        Morphology().fit_transform(_cells(labels, margin=8)),
        rtol=1e-12,
        atol=1e-12,
    )


def test_empty_cellset():
    cells = _cells(np.zeros((20, 20), dtype=np.int32))
    out = Morphology().fit_transform(cells)
    assert out.shape == (0, N_FEATURES)


def test_degenerate_objects():
    labels = np.zeros((30, 30), dtype=np.int32)
    labels[5, 5] = 1  # one pixel
    labels[10, 3:9] = 2  # a one-pixel-wide line
    labels[20:22, 20:22] = 3
    table = _table(labels)
    pixel, line = table.iloc[0], table.iloc[1]
    assert pixel["Area"] == 1 and pixel["Perimeter"] == 0 and np.isnan(pixel["FormFactor"])
    assert pixel["MinFeretDiameter"] == pixel["MaxFeretDiameter"] == 0
    assert pixel["MaximumRadius"] == 1 and pixel["EulerNumber"] == 1
    assert table.filter(like="Zernike").iloc[0].isna().all()  # zero-radius enclosing circle
    assert line["MinFeretDiameter"] == 0 and line["MaxFeretDiameter"] == 5
    assert_allclose(line["Zernike_0_0"], 6 / (np.pi * 2.5**2))
    assert line["Eccentricity"] == 1
    finite = table.drop(columns=["FormFactor"] + [c for c in table if "Zernike" in c])
    assert np.isfinite(finite.to_numpy()).all()


def test_empty_mask_gives_nan():
    crops = np.ones((2, 12, 12))
    masks = np.ones((2, 12, 12), dtype=bool)
    built = CellSet.from_crops(crops, masks)
    flat = built.flat()
    mask = flat.mask.copy()
    mask[: 12 * 12] = False  # the constructors refuse empty masks; CellSet itself does not
    cells = CellSet(flat.values, mask, built.crop_shapes, built.metadata, built.channel_names)
    out = Morphology().fit_transform(cells)
    assert np.isnan(out[0]).all()
    assert out[1, 0] == 144


def test_border_objects_are_measured_as_cut():
    labels = np.zeros((30, 30), dtype=np.int32)
    labels[0:10, 0:10] = 1  # touching the image corner
    labels[15:25, 15:25] = 2
    out = Morphology().fit_transform(_cells(labels))
    assert_allclose(out[0], out[1])
    whole = np.ones((12, 12), dtype=bool)  # a crop that is all mask
    crop = Morphology().fit_transform(CellSet.from_crops(np.ones((1, 12, 12)), whole[None]))
    assert crop[0, 0] == 144 and crop[0, 5] == 44


def test_convex_hull_features_match_scikit_image():
    from skimage.measure import regionprops_table

    labels = _many_objects(40, seed=1)
    props = regionprops_table(
        labels,
        properties=("area_convex", "area_filled", "euler_number", "perimeter", "perimeter_crofton"),
    )
    table = _table(labels, features="sizeshape")
    assert_array_equal(table["ConvexArea"], props["area_convex"])
    assert_array_equal(table["FilledArea"], props["area_filled"])
    assert_array_equal(table["EulerNumber"], props["euler_number"])
    assert_allclose(table["Perimeter"], props["perimeter"])
    assert_allclose(table["PerimeterCrofton"], props["perimeter_crofton"])


@pytest.mark.parametrize("n", [3, 40])  # few objects with holes (box by box), and many
def test_filled_area_and_radii_match_scipy(n):
    from scipy import ndimage as ndi

    labels = _many_objects(n, seed=5)
    table = _table(labels, features="sizeshape")
    eight = np.ones((3, 3), dtype=bool)
    for k in range(n):
        mask = labels == k + 1
        assert table["FilledArea"].iloc[k] == ndi.binary_fill_holes(mask, structure=eight).sum()
        radii = ndi.distance_transform_edt(mask)[mask]
        assert_allclose(
            table.iloc[k][["MaximumRadius", "MeanRadius", "MedianRadius"]].to_numpy(float),
            [radii.max(), radii.mean(), np.median(radii)],
            rtol=1e-12,
        )


def test_matches_cp_measure():
    pytest.importorskip("cp_measure")
    from cp_measure.bulk import get_core_measurements

    labels = SHAPES.copy()
    blobs = _many_objects(9, seed=2)  # 48 x 48, ids 1..9
    labels[150:198, 150:198] = np.where(blobs > 0, blobs + 5, 0)
    image = np.ones(labels.shape)
    theirs = {}
    for name, fn in get_core_measurements().items():
        if name in ("sizeshape", "zernike", "feret"):
            theirs.update(fn(labels, image))
    table = _table(labels)
    assert len(table) == len(np.unique(labels)) - 1
    shared = [name for name in table if name in theirs]
    assert len(shared) == N_FEATURES
    for name in shared:
        assert_allclose(table[name], theirs[name], rtol=1e-7, atol=1e-9, err_msg=name)


def _real_pair(folder, name):
    from featcell.io import read_image, read_labels

    image = np.asarray(read_image(folder / "images" / name), dtype=float)
    if image.ndim == 3:
        image = image[..., 0]
    return image / 255.0, np.asarray(read_labels(folder / "labels" / name)).astype(np.int32)


@pytest.mark.parametrize(
    "folder, name",
    [("cell_line/coelho2009", "u2os_dna-0.png"), ("segmentation/dsb2018", "0121d6759c5adb29.png")],
)
def test_real_images_match_cp_measure(shared_data, folder, name):
    pytest.importorskip("cp_measure")
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from _fidelity_morphology import compare

    image, labels = _real_pair(shared_data / folder, name)
    long = compare(image[:400, :400], labels[:400, :400])  # a corner keeps the test quick
    ok = np.isfinite(long["featcell"]) & np.isfinite(long["cp_measure"])
    close = np.isclose(long["featcell"], long["cp_measure"], rtol=1e-6, atol=1e-9)
    assert (close | ~ok).all(), long[~close & ok].head()
