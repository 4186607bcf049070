"""Cells with nuclei, cells and cytoplasm compartments, checked against cp_measure."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from featcell import CellFeatures, CellSet, Intensity, Morphology, Texture
from featcell.compartments import (
    CompartmentCellSet,
    cytoplasm_labels,
    relate_objects,
)

# cells 1..3 with nuclei 11, 12, 13 (ids differ on purpose); cell 4 has two nuclei (14 large,
# 15 small); cell 5 has none; nucleus 16 lies outside every cell; nucleus 13 pokes out of cell 3
CELLS = np.zeros((60, 80), np.int32)
CELLS[2:20, 2:22] = 1
CELLS[2:20, 30:52] = 2
CELLS[25:45, 2:24] = 3
CELLS[25:50, 30:60] = 4
CELLS[40:55, 65:78] = 5
NUCLEI = np.zeros_like(CELLS)
NUCLEI[6:14, 6:14] = 11
NUCLEI[7:15, 36:44] = 12
NUCLEI[30:40, 18:27] = 13
NUCLEI[30:40, 33:42] = 14
NUCLEI[42:46, 50:54] = 15
NUCLEI[5:12, 62:70] = 16


def _image(seed=0, shape=CELLS.shape):
    rng = np.random.default_rng(seed)
    dna = rng.random(shape) * 0.2 + 0.6 * (NUCLEI > 0)
    actin = rng.random(shape) * 0.2 + 0.4 * (CELLS > 0)
    return np.stack([dna, actin], axis=-1)


def _cells(**kwargs):
    return CellSet.from_compartments(
        _image(), {"Nuclei": NUCLEI, "Cells": CELLS}, ["DNA", "Actin"], "img", **kwargs
    )


def test_relate_objects_by_largest_overlap():
    parent_of, overlap = relate_objects(CELLS, NUCLEI)
    assert parent_of[[11, 12, 13, 14, 15, 16]].tolist() == [1, 2, 3, 4, 4, 0]
    assert overlap[13] == 10 * 6  # the part of nucleus 13 inside cell 3
    # a child split evenly between two parents goes to the lower id (numpy.argmax)
    assert relate_objects(np.array([[2, 2, 1, 1]]), np.array([[3, 3, 3, 3]]))[0][3] == 1


def test_cytoplasm_keeps_the_nucleus_outline_as_cellprofiler():
    cyto = cytoplasm_labels(CELLS, NUCLEI)
    inner = (NUCLEI == 11).copy()
    inner[6, :] = inner[13, :] = inner[:, 6] = inner[:, 13] = False  # the 8 x 8 nucleus' rim
    assert (cyto[inner] == 0).all() and (cyto[(NUCLEI == 11) & ~inner] == 1).all()
    assert ((cyto == 1).sum()) == 18 * 20 - 6 * 6
    plain = cytoplasm_labels(CELLS, NUCLEI, shrink=False)
    assert ((plain == 1).sum()) == 18 * 20 - 8 * 8


def test_one_row_per_cell_with_its_nucleus_and_relationships():
    cells = _cells()
    assert isinstance(cells, CompartmentCellSet)
    assert cells.compartment_names == ("Nuclei", "Cells", "Cytoplasm")
    meta = cells.metadata
    assert meta["Metadata_ObjectNumber"].tolist() == [1, 2, 3, 4]  # cell 5 has no nucleus
    assert meta["Metadata_Nuclei_Number_Object_Number"].tolist() == [11, 12, 13, 14]
    assert meta["Metadata_Nuclei_Parent_Cells"].tolist() == [1, 2, 3, 4]
    assert meta["Metadata_Cells_Children_Nuclei_Count"].tolist() == [1, 1, 1, 2]
    assert meta["Metadata_Cytoplasm_Parent_Nuclei"].tolist() == [11, 12, 13, 14]
    assert_allclose(meta["Metadata_Nuclei_Location_Center_X"], [9.5, 39.5, 22.0, 37.0])
    assert cells.index.tolist() == ["img:1", "img:2", "img:3", "img:4"]
    # the nucleus keeps the part outside its cell (the crop holds both), the cell its own mask
    nuclei = cells.compartment("Nuclei")
    assert [nuclei.mask(i).sum() for i in range(4)] == [64, 64, 90, 90]
    assert [cells.mask(i).sum() for i in range(4)] == [360, 396, 440, 750]
    cyto = cells.compartment("Cytoplasm")
    expected = [int((cytoplasm_labels(CELLS, NUCLEI) == k).sum()) for k in (1, 2, 3, 4)]
    assert [cyto.mask(i).sum() for i in range(4)] == expected


def test_each_family_measures_the_compartment_it_names():
    cells = _cells()
    area = {
        name: Morphology(features="sizeshape", compartment=name).set_output(transform="pandas")
        .fit_transform(cells)[f"{name}_AreaShape_Area"].tolist()
        for name in cells.compartment_names
    }
    assert area["Nuclei"] == [64, 64, 90, 90]
    assert area["Cells"] == [360, 396, 440, 750]
    cytoplasm = cytoplasm_labels(CELLS, NUCLEI)
    assert area["Cytoplasm"] == [int((cytoplasm == k).sum()) for k in (1, 2, 3, 4)]
    # no compartment: the whole cell, unprefixed
    plain = Morphology(features="sizeshape").set_output(transform="pandas").fit_transform(cells)
    assert plain["AreaShape_Area"].tolist() == area["Cells"]
    with pytest.raises(ValueError, match="not one of the cells' compartments"):
        Morphology(compartment="Golgi").fit_transform(cells)


def test_cell_features_measure_every_compartment():
    cells = _cells()
    step = CellFeatures(families=["morphology", "intensity"]).set_output(transform="pandas")
    table = step.fit_transform(cells)
    prefixes = {name.split("_")[0] for name in table.columns}
    assert prefixes == {"Nuclei", "Cells", "Cytoplasm"}
    assert "Nuclei_Intensity_MeanIntensity_DNA" in table
    assert "Cytoplasm_Intensity_MeanIntensity_Actin" in table
    assert table.index.tolist() == cells.index.tolist()
    # nuclei are bright in DNA, the cytoplasm is not
    assert (table["Nuclei_Intensity_MeanIntensity_DNA"]
            > table["Cytoplasm_Intensity_MeanIntensity_DNA"] + 0.4).all()
    assert len(set(step.family_of_feature_)) == 2
    # an explicit compartment measures that one only
    only = CellFeatures(families=["morphology"], compartment="Nuclei").fit(cells)
    assert all(n.startswith("Nuclei_") for n in only.get_feature_names_out())


def test_indexing_and_concat_keep_compartments():
    cells = _cells()
    part = cells[[3, 1]]
    assert isinstance(part, CompartmentCellSet)
    assert part.compartment_names == cells.compartment_names
    assert part.compartment("Nuclei").mask(0).sum() == 90
    both = CellSet.concat([cells, part])
    assert isinstance(both, CompartmentCellSet) and len(both) == 6
    assert both.compartment("Nuclei").mask(4).sum() == 90
    with pytest.raises(TypeError, match="compartments"):
        CellSet.concat([cells, CellSet.from_labels(_image(), CELLS, ["DNA", "Actin"])])
    empty = CellSet.from_compartments(
        _image(), {"Nuclei": np.zeros_like(NUCLEI), "Cells": CELLS}, ["DNA", "Actin"]
    )
    assert len(empty) == 0 and empty.compartment_names == cells.compartment_names
    assert len(CellSet.concat([empty, cells])) == 4
    assert "Metadata_Cells_Children_Nuclei_Count" in empty.metadata


def test_huge_ids_keep_their_numbers_without_tables_by_id():
    # ids near 2**40 (one row per id would take terabytes) give the same cells, numbered
    # with the original ids
    big = 2**40
    nuclei, cells = NUCLEI.astype(np.int64), CELLS.astype(np.int64)
    cells = CellSet.from_compartments(
        _image(), {"Nuclei": np.where(nuclei > 0, nuclei + big, 0), "Cells": cells * big},
        ["DNA", "Actin"], "img",
    )
    small = _cells()
    assert_array_equal(cells.metadata["Metadata_ObjectNumber"], small.metadata["Metadata_ObjectNumber"] * big)
    assert_array_equal(cells.metadata["Metadata_Nuclei_Number_Object_Number"],
                       small.metadata["Metadata_Nuclei_Number_Object_Number"] + big)
    assert_array_equal(cells.metadata["Metadata_Cytoplasm_Parent_Nuclei"],
                       small.metadata["Metadata_Cytoplasm_Parent_Nuclei"] + big)
    assert_array_equal(cells.metadata["Metadata_Nuclei_Parent_Cells"],
                       cells.metadata["Metadata_ObjectNumber"])
    assert_allclose(Intensity().fit_transform(cells), Intensity().fit_transform(small))


def test_planes_of_different_shapes_are_refused_by_name():
    with pytest.raises(ValueError, match="list of planes of different shapes"):
        CellSet.from_compartments([np.zeros((60, 80)), np.zeros((60, 81))],
                                  {"Nuclei": NUCLEI, "Cells": CELLS}, ["DNA", "Actin"])


def test_a_compartment_cut_by_the_border_is_measured_as_cut():
    # the nucleus reaches row 0, its cell does not: the nucleus's edge is measured as
    # CellProfiler measures it (the border is no background), as from_labels does
    image = np.random.default_rng(0).random((30, 30))
    cells = np.zeros((30, 30), np.int32)
    cells[1:12, 2:14] = 1
    nuclei = np.zeros((30, 30), np.int32)
    nuclei[0:5, 5:10] = 1
    both = CellSet.from_compartments(image, {"Nuclei": nuclei, "Cells": cells}, ["DNA"])
    assert not both.metadata["Metadata_TouchesBorder"][0]
    assert both.compartment("Nuclei").metadata["Metadata_TouchesBorder"].tolist() == [True]
    assert both.compartment("Cytoplasm").metadata["Metadata_TouchesBorder"].tolist() == [False]
    taller = cells.copy()
    taller[0, 2:14] = 1  # the cell reaches row 0 too, and its cytoplasm beside the nucleus
    tall = CellSet.from_compartments(image, {"Nuclei": nuclei, "Cells": taller}, ["DNA"])
    assert tall.compartment("Cytoplasm").metadata["Metadata_TouchesBorder"].tolist() == [True]
    alone = CellSet.from_labels(image, nuclei, ["DNA"])
    assert_allclose(Intensity(compartment="Nuclei", features="edge").fit_transform(both),
                    Intensity(features="edge").fit_transform(alone), rtol=1e-12)
    assert_allclose(Intensity(compartment="Cells", features="edge").fit_transform(both),
                    Intensity(features="edge").fit_transform(
                        CellSet.from_labels(image, cells, ["DNA"])), rtol=1e-12)


def test_granularity_of_a_compartment_is_measured_on_the_whole_field():
    # CellProfiler measures granularity on the whole image; a nucleus measured as a
    # compartment of its cell is the same nucleus measured from the nuclei label image
    cells = _cells()
    step = Texture(features=["granularity"], compartment="Nuclei", channels=["DNA"])
    got = step.fit_transform(cells)
    nuclei = CellSet.from_labels(_image(), NUCLEI, ["DNA", "Actin"], "img")
    rows = [nuclei.metadata["Metadata_ObjectNumber"].tolist().index(k) for k in (11, 12, 13, 14)]
    expected = Texture(features=["granularity"], channels=["DNA"]).fit_transform(nuclei)[rows]
    assert np.isfinite(got).all() and got.shape == (4, 16)
    assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert cells.compartment("Nuclei").fields()[0][0] is cells.fields()[0][0]


def test_options_and_bad_input():
    assert _cells(cytoplasm=False).compartment_names == ("Nuclei", "Cells")
    assert len(_cells(exclude_border=True)) == 4  # no cell touches the border
    lone = CellSet.from_compartments(_image(), {"Nuclei": NUCLEI}, ["DNA", "Actin"])
    assert lone.compartment_names == ("Nuclei",) and len(lone) == 6
    names = CellFeatures(families=["morphology"]).fit(lone).get_feature_names_out()
    assert names[0].startswith("Nuclei_AreaShape_")
    with pytest.raises(TypeError, match="dict of compartment name"):
        CellSet.from_compartments(_image(), [NUCLEI, CELLS])
    with pytest.raises(ValueError, match="compartment name"):
        CellSet.from_compartments(_image(), {"Cell_s": CELLS})
    with pytest.raises(ValueError, match="different shapes"):
        CellSet.from_compartments(_image(), {"Nuclei": NUCLEI[:50], "Cells": CELLS})
    with pytest.raises(ValueError, match="parent"):
        CellSet.from_compartments(_image(), {"Nuclei": NUCLEI}, parent="Cells")


# ---------------------------------------------------------------------- against cp_measure
def _cp_measure(labels, image):
    """cp_measure's per-object measurements, named as featcell names them (channel DNA)."""
    from cp_measure.core.measureobjectintensity import get_intensity
    from cp_measure.core.measureobjectsizeshape import get_sizeshape
    from cp_measure.core.measuretexture import get_texture

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = {f"AreaShape_{key}": values for key, values in get_sizeshape(labels, image).items()}
        for key, values in get_intensity(labels, image, legacy=True).items():
            table[f"{key}_DNA"] = values
        for key, values in get_texture(labels, image, scale=3, gray_levels=256).items():
            table[f"Texture_{key.split('_')[0]}_DNA_{'_'.join(key.split('_')[1:])}"] = values
    return table


def test_compartments_agree_with_cp_measure():
    """Nuclei, cells and cytoplasm of one row match cp_measure run on each label image."""
    pytest.importorskip("cp_measure")
    from featcell.segmentation import segment_cells

    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:96, :96]
    nuclei = np.zeros((96, 96), np.int32)
    for k, (cy, cx) in enumerate([(20, 22), (24, 70), (70, 25), (72, 72)]):
        nuclei[(yy - cy) ** 2 / 49 + (xx - cx) ** 2 / 36 <= 1] = k + 1
    stain = np.zeros((96, 96))
    for cy, cx in [(20, 22), (24, 70), (70, 25), (72, 72)]:
        stain += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 14.0**2))
    cells = segment_cells(stain, nuclei)
    image = (0.5 * (nuclei > 0) + 0.3 * stain + 0.1 * rng.random((96, 96))).astype(np.float32)
    image = image.astype(np.float64)
    X = CellSet.from_compartments(image, {"Nuclei": nuclei, "Cells": cells}, ["DNA"])
    assert len(X) == 4
    ours = (
        CellFeatures(families=["morphology", "intensity"])
        .set_output(transform="pandas")
        .fit_transform(X)
        .join(
            Texture(features="haralick", scales=[3], compartment="Nuclei")
            .set_output(transform="pandas").fit_transform(X)
        )
    )
    references = {
        "Nuclei": nuclei,
        "Cells": cells,
        "Cytoplasm": cytoplasm_labels(cells, nuclei),
    }
    compared = 0
    for compartment, labels in references.items():
        theirs = _cp_measure(labels, image)
        for name, values in theirs.items():
            column = f"{compartment}_{name}"
            if column in ours:
                assert_allclose(ours[column], values, rtol=1e-6, atol=1e-9, err_msg=column)
                compared += 1
    # size, shape, moments and intensity (84 each) in all three; Haralick texture of the nuclei
    assert compared >= 3 * 84 + 52


def test_compartments_on_ht29(shared_data):
    """The HT29 field: nuclei from DNA, cells grown in the cell stain, one row per cell."""
    import tifffile

    from featcell.segmentation import segment, segment_cells

    folder = shared_data / "viability" / "ht29_ph3"
    planes = [tifffile.imread(folder / f"AS_09125_050116030001_D03f00d{k}.tif") for k in range(3)]
    nuclei = segment(planes[0])
    cells = segment_cells(planes[2], nuclei, log_transform=True)
    X = CellSet.from_compartments(planes, {"Nuclei": nuclei, "Cells": cells},
                                  ["DNA", "PH3", "Cells"], "D03f00")
    assert len(X) == len(np.unique(nuclei)) - 1  # every grown cell keeps its nucleus
    assert_array_equal(X.metadata["Metadata_Cells_Children_Nuclei_Count"], 1)
    table = Intensity(features="intensity").set_output(transform="pandas")
    nuc = table.set_params(compartment="Nuclei").fit_transform(X)
    cyto = table.set_params(compartment="Cytoplasm").fit_transform(X)
    # DNA is in the nucleus, the cell stain in the cytoplasm
    assert (nuc["Nuclei_Intensity_MeanIntensity_DNA"]
            > cyto["Cytoplasm_Intensity_MeanIntensity_DNA"]).mean() > 0.95
    assert (nuc["Nuclei_Intensity_MeanIntensity_Cells"]
            < cyto["Cytoplasm_Intensity_MeanIntensity_Cells"]).mean() > 0.8


def test_cells_without_the_fitted_compartments_are_refused():
    """Fitted on cells with compartments, CellFeatures measured cells without them and
    gave the whole cell as the nucleus and the cytoplasm (Nuclei_AreaShape_Area 256, not
    25)."""
    from featcell import CellFeatures

    cells = np.zeros((40, 40), np.int32)
    cells[2:18, 2:18], cells[20:38, 20:38] = 1, 2
    nuclei = np.zeros((40, 40), np.int32)
    nuclei[7:12, 7:12], nuclei[25:30, 25:30] = 1, 5
    image = np.random.default_rng(0).random((40, 40))
    with_compartments = CellSet.from_compartments(image, {"Nuclei": nuclei, "Cells": cells},
                                                  ["DNA"], image_id="i")
    plain = CellSet.from_labels(image, cells, ["DNA"], image_id="i")
    model = CellFeatures(families=["morphology"]).set_output(transform="pandas")
    table = model.fit(with_compartments).transform(with_compartments)
    assert table["Nuclei_AreaShape_Area"].tolist() == [25, 25]
    with pytest.raises(ValueError, match=r"X has compartments None but the transformer was "
                                         r"fitted on cells with compartments \['Nuclei'"):
        model.transform(plain)
    with pytest.raises(ValueError, match=r"X has compartments \['Nuclei'"):
        CellFeatures(families=["morphology"]).fit(plain).transform(with_compartments)
