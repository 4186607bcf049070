"""Tables for pycytominer and CellProfiler users, AnnData (h5ad) and napari."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import tifffile
from numpy.testing import assert_allclose, assert_array_equal

from featcell import CellFeatures, CellSet, napari_features, to_anndata
from featcell.cli import main
from featcell.interop import (
    cellprofiler_names,
    cells_to_labels,
    featcell_names,
    parse_feature_name,
)
from featcell.io import metadata_from_filename

# cells 1..4 and their nuclei (cell 4 has two)
CELLS = np.zeros((60, 80), np.int32)
CELLS[2:20, 2:22], CELLS[2:20, 30:52], CELLS[25:45, 2:24], CELLS[25:50, 30:60] = 1, 2, 3, 4
NUCLEI = np.zeros_like(CELLS)
NUCLEI[6:14, 6:14], NUCLEI[7:15, 36:44], NUCLEI[30:40, 10:20] = 11, 12, 13
NUCLEI[30:40, 33:42], NUCLEI[42:46, 50:54] = 14, 15


def _image(seed=0):
    rng = np.random.default_rng(seed)
    dna = rng.random(CELLS.shape) * 0.2 + 0.6 * (NUCLEI > 0)
    actin = rng.random(CELLS.shape) * 0.2 + 0.4 * (CELLS > 0)
    return np.stack([dna, actin], axis=-1)


# ImageXpress-style names: plate P1, wells A01..A03, two sites each
NAMES = [f"P1_{well}_s{site}_w1.tif" for well in ("A01", "A02", "A03") for site in (1, 2)]


def _field(seed):
    """A 2-channel 64 x 64 field with 4-6 objects of random size and brightness."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :64]
    labels = np.zeros((64, 64), np.uint16)
    for k, (cy, cx) in enumerate([(14, 14), (14, 46), (46, 14), (46, 46), (30, 30)]):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= rng.integers(16, 60)] = k + 1
    image = rng.integers(0, 40, (64, 64, 2)).astype(np.uint16)
    image[labels > 0] += rng.integers(300, 3000, size=2).astype(np.uint16)
    return image, labels


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    root = tmp_path_factory.mktemp("plate")
    (root / "images").mkdir()
    (root / "labels").mkdir()
    for i, name in enumerate(NAMES):
        image, labels = _field(i)
        tifffile.imwrite(root / "images" / name, np.moveaxis(image, -1, 0))
        tifffile.imwrite(root / "labels" / name, labels)
    return root


def _extract(root, out, *extra):
    code = main(["extract", str(root / "images"), "--labels", str(root / "labels"),
                 "--channels", "DNA", "Actin", "--families", "morphology", "intensity",
                 "--metadata", "Batch=B7", "-o", str(out), "-q", *extra])
    assert code == 0


# ---------------------------------------------------------------------- pycytominer
def test_pycytominer_accepts_an_extract_table_with_default_arguments(plate, tmp_path):
    pycytominer = pytest.importorskip("pycytominer")
    out = tmp_path / "features.parquet"
    _extract(plate, out)
    table = pd.read_parquet(out)
    features = [c for c in table.columns if not c.startswith("Metadata_")]
    assert all(c.startswith("Cells_") for c in features)
    assert {"Cells_AreaShape_Area", "Cells_Intensity_MeanIntensity_DNA",
            "Cells_Location_Center_X", "Cells_Location_Center_Y"} <= set(features)
    assert set(table["Metadata_Plate"]) == {"P1"}  # from the file names
    assert sorted(set(table["Metadata_Well"])) == ["A01", "A02", "A03"]
    assert set(table["Metadata_Site"]) == {1, 2}
    assert set(table["Metadata_Batch"]) == {"B7"}  # --metadata KEY=VALUE

    profiles = pycytominer.aggregate(table)
    assert len(profiles) == 3
    assert "Cells_AreaShape_Area" in profiles
    per_well = table.groupby("Metadata_Well")["Cells_AreaShape_Area"].median()
    assert_allclose(profiles.set_index("Metadata_Well")["Cells_AreaShape_Area"], per_well)
    normalized = pycytominer.normalize(profiles)
    assert normalized.shape == profiles.shape
    assert_allclose(normalized["Cells_AreaShape_Area"].mean(), 0, atol=1e-9)
    selected = pycytominer.feature_select(normalized)
    kept = [c for c in selected.columns if c.startswith("Cells_")]
    assert 0 < len(kept) < len(features)
    assert {"Metadata_Plate", "Metadata_Well"} <= set(selected.columns)


def test_compartment_option_and_csv(plate, tmp_path):
    out = tmp_path / "nuclei.csv"
    _extract(plate, out, "--compartment", "Nuclei")
    table = pd.read_csv(out)
    assert "Nuclei_AreaShape_Area" in table and "Nuclei_Location_Center_X" in table
    assert not [c for c in table.columns if c.startswith("Cells_")]
    settings = json.loads((tmp_path / "nuclei_settings.json").read_text())
    assert settings["compartment"] == "Nuclei"
    assert main(["extract", str(plate / "images"), "--compartment", "Nu_clei",
                 "-o", str(tmp_path / "x.parquet"), "-q"]) == 2


def test_train_and_score_read_cellprofiler_named_tables(plate, tmp_path, capsys):
    out = tmp_path / "features.parquet"
    _extract(plate, out)
    model = tmp_path / "m.featcell"
    assert main(["train", str(out), "--target", "Well", "--task", "phenotype", "--model", "lr",
                 "--cv", "2", "--group-by", "ImageID", "-o", str(model), "-q"]) == 0
    capsys.readouterr()
    # the positions are metadata again, not features of the model
    from featcell.persist import load_model

    names = list(load_model(model)[0].get_feature_names_out())
    assert "Cells_AreaShape_Area" in names and not [n for n in names if "Location" in n]
    scored = tmp_path / "p.parquet"
    assert main(["score", str(model), str(out), "-o", str(scored), "-q"]) == 0
    assert len(pd.read_parquet(scored)) == len(pd.read_parquet(out))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("r02c03f01p01-ch1sk1fk1fl1.tiff", {"Well": "B03", "Site": 1}),
        ("r16c24f123p01-ch2sk1fk1fl1.tif", {"Well": "P24", "Site": 123}),
        ("Plate1_A01_s1_w1.tif", {"Plate": "Plate1", "Well": "A01", "Site": 1}),
        ("A01_s3_w2.TIF", {"Well": "A01", "Site": 3}),
        ("Plate1_B12_w1F0E5C3A1-1234-4B7D-AAAA-0123456789AB.tif",
         {"Plate": "Plate1", "Well": "B12"}),
        ("AssayPlate_Greiner_#655090_b03_T0001F002L01A01Z01C02.tif",
         {"Plate": "AssayPlate_Greiner_#655090", "Well": "B03", "Site": 2}),
        ("AS_09125_050116030001_D03f00d0.tif",
         {"Plate": "AS_09125_050116030001", "Well": "D03", "Site": 0}),
        ("u2os_dna-0.png", {}),
        ("SIMCEPImages_A05_C18_F1_s05_w1.TIF", {}),  # BBBC005: no well right before _s
        ("r40c01f01p01-ch1.tif", {}),  # no such row
    ],
)
def test_metadata_from_plate_reader_file_names(name, expected):
    assert metadata_from_filename(name) == expected


def test_cellprofiler_names_round_trip():
    columns = ["Metadata_ImageID", "Metadata_Location_Center_X", "Metadata_Location_Center_Y",
               "Metadata_Nuclei_Location_Center_X", "Metadata_Nuclei_Parent_Cells",
               "Metadata_Cells_Children_Nuclei_Count", "Metadata_Nuclei_Number_Object_Number",
               "Cells_AreaShape_Area", "CNN_EfficientNetLite0_0000", "Metadata_Well"]
    forward = cellprofiler_names(columns, "Cells")
    assert forward["Metadata_Location_Center_X"] == "Cells_Location_Center_X"
    assert forward["Metadata_Cells_Children_Nuclei_Count"] == "Cells_Children_Nuclei_Count"
    assert forward["CNN_EfficientNetLite0_0000"] == "Cells_CNN_EfficientNetLite0_0000"
    assert "Metadata_Well" not in forward and "Cells_AreaShape_Area" not in forward
    renamed = [forward.get(c, c) for c in columns]
    back = featcell_names(renamed)
    assert [back.get(c, c) for c in renamed] == columns
    with pytest.raises(ValueError, match="compartment"):
        cellprofiler_names(columns, "Cell_s")


def test_cellprofiler_ids_and_positions_are_metadata_not_features(tmp_path, capsys):
    """CellProfiler's per-object tables carry ImageNumber and ObjectNumber unprefixed: as
    features they told the model which image a cell came from (a constant class per image
    scored 1.000 on noise features)."""
    import pandas as pd

    from featcell.cli import main

    columns = ["ImageNumber", "ObjectNumber", "Location_Center_X", "AreaShape_Center_Y",
               "Nuclei_Location_CenterMassIntensity_X_DNA", "Parent_Cells", "AreaShape_Area",
               "Metadata_Well"]
    assert featcell_names(columns) == {c: f"Metadata_{c}" for c in columns[:6]}
    rng = np.random.default_rng(0)
    image = np.repeat(np.arange(20), 20)
    pd.DataFrame({"ImageNumber": image + 1, "ObjectNumber": np.tile(np.arange(20), 20) + 1,
                  "Metadata_ImageID": image, "Class": np.where(image < 10, "A", "B"),
                  "AreaShape_Area": rng.normal(size=400), "f": rng.normal(size=400)}
                 ).to_csv(tmp_path / "objects.csv", index=False)
    code = main(["train", str(tmp_path / "objects.csv"), "--target", "Class", "--model", "rf",
                 "--group-by", "Metadata_ImageID", "-o", str(tmp_path / "m.featcell")])
    out, err = capsys.readouterr()
    assert code == 0, err
    text = out + err
    assert "x 2 features" in text  # AreaShape_Area and f; the ids are metadata
    import re

    accuracy = float(re.search(r"balanced_accuracy\s+([0-9.]+)\s+\[", text)[1])
    assert accuracy < 0.75, text  # chance: the ids gave 1.000


@pytest.mark.parametrize(
    ("name", "compartment", "family", "feature", "channel", "channel_2"),
    [
        ("Cells_AreaShape_Zernike_3_1", "Cells", "morphology", "Zernike", "", ""),
        ("Nuclei_Intensity_MeanIntensity_DNA", "Nuclei", "intensity", "MeanIntensity", "DNA", ""),
        ("Intensity_MaxIntensityOffset_X_DNA", "", "intensity", "MaxIntensityOffset", "DNA", ""),
        ("Cytoplasm_RadialDistribution_FracAtD_Actin_1of4", "Cytoplasm", "intensity",
         "FracAtD", "Actin", ""),
        ("Cells_Texture_LBP_3_DNA_8_1", "Cells", "texture", "LBP_3", "DNA", ""),
        ("Cells_Granularity_12_Actin", "Cells", "texture", "12", "Actin", ""),
        ("Cells_Correlation_K_DNA_Actin", "Cells", "colocalization", "K", "DNA", "Actin"),
        ("Cells_CNN_EfficientNetLite0_0001", "Cells", "cnn", "EfficientNetLite0", "", ""),
    ],
)
def test_parse_feature_names(name, compartment, family, feature, channel, channel_2):
    parsed = parse_feature_name(name)
    assert (parsed["compartment"], parsed["family"], parsed["feature"], parsed["channel"],
            parsed["channel_2"]) == (compartment, family, feature, channel, channel_2)
    assert parse_feature_name(name, channels=["DNA", "Actin"])["channel"] == channel


# ---------------------------------------------------------------------- AnnData
def test_extract_h5ad_round_trip(plate, tmp_path):
    anndata = pytest.importorskip("anndata")
    out = tmp_path / "features.h5ad"
    _extract(plate, out)
    adata = anndata.read_h5ad(out)
    table = pd.read_parquet(tmp_path / "features.parquet")  # kept beside it
    assert adata.n_obs == len(table)
    assert adata.obs_names[0] == f"{NAMES[0]}:1" and adata.obs_names.is_unique
    assert_allclose(adata.X, table[list(adata.var_names)].to_numpy(np.float32))
    assert_allclose(adata.obsm["spatial"],
                    table[["Cells_Location_Center_X", "Cells_Location_Center_Y"]])
    assert {"Metadata_Plate", "Metadata_Well", "Metadata_ImageID"} <= set(adata.obs.columns)
    assert not [c for c in adata.var_names if "Location" in c]
    var = adata.var.loc["Cells_Intensity_MeanIntensity_Actin"]
    assert (var["compartment"], var["family"], var["channel"]) == ("Cells", "intensity", "Actin")
    assert str(adata.var["family"].dtype) == "category"
    # what to_anndata gives in memory is what the file holds
    again = to_anndata(table, channels=["DNA", "Actin"])
    assert_array_equal(again.X, adata.X)
    pd.testing.assert_frame_equal(again.obs, adata.obs)
    pd.testing.assert_frame_equal(again.var, adata.var)
    for key in ("spatial",):
        assert_array_equal(again.obsm[key], adata.obsm[key])
    # and a written then read AnnData is the same object
    again.write_h5ad(tmp_path / "again.h5ad")
    back = anndata.read_h5ad(tmp_path / "again.h5ad")
    assert_array_equal(back.X, again.X)
    pd.testing.assert_frame_equal(back.obs, again.obs)
    pd.testing.assert_frame_equal(back.var, again.var)
    assert back.obsm.keys() == again.obsm.keys()


def test_to_anndata_from_python_with_compartments_and_cnn():
    pytest.importorskip("anndata")
    cells = CellSet.from_compartments(_image(), {"Nuclei": NUCLEI, "Cells": CELLS},
                                      ["DNA", "Actin"], "img")
    features = CellFeatures(families=["morphology"]).set_output(transform="pandas")
    features = features.fit_transform(cells)
    assert features.index.tolist() == ["img:1", "img:2", "img:3", "img:4"]
    cnn = pd.DataFrame(np.arange(8.0).reshape(4, 2), index=features.index,
                       columns=["CNN_Net_0000", "CNN_Net_0001"])
    # features and embeddings join by cell id, in any order
    table = cells.metadata.set_index(cells.index).join(features).join(cnn.iloc[::-1])
    adata = to_anndata(table)
    assert adata.obs_names.tolist() == ["img:1", "img:2", "img:3", "img:4"]
    assert set(adata.var["compartment"]) == {"Nuclei", "Cells", "Cytoplasm"}
    assert_array_equal(adata.obsm["X_cnn"], np.arange(8.0).reshape(4, 2))
    assert_allclose(adata.obsm["spatial"][:, 0], cells.metadata["Metadata_Location_Center_X"])
    assert_allclose(adata.obsm["spatial_Nuclei"][:, 0],
                    cells.metadata["Metadata_Nuclei_Location_Center_X"])
    assert adata.obs["Cells_Children_Nuclei_Count"].tolist() == [1, 1, 1, 2]
    with pytest.raises(TypeError, match="DataFrame"):
        to_anndata(features.to_numpy())


def test_extract_with_compartments(tmp_path):
    for folder in ("images", "nuclei", "cells"):
        (tmp_path / folder).mkdir()
    for name in ("a.tif", "b.tif"):
        tifffile.imwrite(tmp_path / "images" / name,
                         np.moveaxis((_image() * 1000).astype(np.uint16), -1, 0))
        tifffile.imwrite(tmp_path / "nuclei" / name, NUCLEI)
        tifffile.imwrite(tmp_path / "cells" / name, CELLS)
    out = tmp_path / "features.parquet"
    assert main(["extract", str(tmp_path / "images"), "--labels",
                 f"Nuclei={tmp_path / 'nuclei'}", f"Cells={tmp_path / 'cells'}",
                 "--channels", "DNA", "Actin", "--families", "morphology", "-o", str(out),
                 "-q"]) == 0
    table = pd.read_parquet(out)
    assert len(table) == 8
    for column in ("Nuclei_AreaShape_Area", "Cells_AreaShape_Area", "Cytoplasm_AreaShape_Area",
                   "Nuclei_Parent_Cells", "Cells_Children_Nuclei_Count",
                   "Cells_Location_Center_X", "Nuclei_Location_Center_X"):
        assert column in table, column
    assert not (tmp_path / "features_labels").exists()  # nothing was segmented
    assert main(["extract", str(tmp_path / "images"), "--labels", "Nuclei=x", "Cells",
                 "-o", str(out), "-q"]) == 2


# ---------------------------------------------------------------------- napari
def test_napari_features_keyed_by_label_value():
    table = pd.DataFrame({"Metadata_ImageID": ["a.tif"] * 3 + ["b.tif"],
                          "Metadata_ObjectNumber": [9, 2, 5, 1],
                          "Prediction": ["dead", "live", "live", "dead"],
                          "Probability_dead": [0.9, 0.2, 0.1, 0.8]})
    features = napari_features(table, image_id="some/folder/a.tif")
    assert features["index"].tolist() == [2, 5, 9]
    assert features.columns.tolist() == ["index", "Prediction", "Probability_dead"]
    assert features.loc[features["index"] == 9, "Prediction"].item() == "dead"
    with pytest.raises(ValueError, match="image_id"):
        napari_features(table)
    with pytest.raises(ValueError, match="no rows"):
        napari_features(table, "c.tif")
    with pytest.raises(ValueError, match="ObjectNumber"):
        napari_features(table.drop(columns="Metadata_ObjectNumber"))


def test_cells_to_labels_inverts_from_labels():
    image, labels = _field(3)
    cells = CellSet.from_labels(image, labels)
    assert_array_equal(cells_to_labels(cells, labels.shape), labels)
    assert_array_equal(cells_to_labels(cells[[2, 0]], labels.shape),
                       np.where(np.isin(labels, [1, 3]), labels, 0))
    with pytest.raises(TypeError, match="CellSet"):
        cells_to_labels(labels)


def test_extract_saves_the_labels_it_segments(plate, tmp_path):
    out = tmp_path / "auto.parquet"
    code = main(["extract", str(plate / "images"), "--channels", "DNA", "Actin",
                 "--families", "morphology", "-o", str(out), "-q"])
    assert code == 0
    table = pd.read_parquet(out)
    saved = sorted((tmp_path / "auto_labels").iterdir())
    assert [p.name for p in saved] == sorted(n.replace(".tif", "_labels.tif") for n in NAMES)
    first = tifffile.imread(saved[0])
    rows = table[table["Metadata_ImageID"] == saved[0].name.replace("_labels", "")]
    assert sorted(np.unique(first[first > 0])) == sorted(rows["Metadata_ObjectNumber"])
    # the saved labels read back give the same cells
    again = tmp_path / "again.parquet"
    assert main(["extract", str(plate / "images"), "--labels", str(tmp_path / "auto_labels"),
                 "--channels", "DNA", "Actin", "--families", "morphology",
                 "-o", str(again), "-q"]) == 0
    assert_allclose(pd.read_parquet(again)["Cells_AreaShape_Area"], table["Cells_AreaShape_Area"])
    assert not (tmp_path / "again_labels").exists()
    quiet = tmp_path / "none.parquet"
    assert main(["extract", str(plate / "images"), "--channels", "DNA", "Actin",
                 "--families", "morphology", "--no-save-labels", "-o", str(quiet), "-q"]) == 0
    assert not (tmp_path / "none_labels").exists()


def test_read_cells_with_compartments_metadata_and_saved_box_masks(tmp_path):
    from featcell import iter_cells, read_cells

    for folder in ("images", "nuclei", "cells", "boxes"):
        (tmp_path / folder).mkdir()
    name = "r01c02f03p01-ch1sk1fk1fl1.tif"  # Opera: well A02, site 3
    image = (_image() * 1000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "images" / name, np.moveaxis(image, -1, 0))
    tifffile.imwrite(tmp_path / "nuclei" / name, NUCLEI)
    tifffile.imwrite(tmp_path / "cells" / name, CELLS)
    cells = read_cells(tmp_path / "images", {"Nuclei": tmp_path / "nuclei",
                                             "Cells": tmp_path / "cells"},
                       channels=["DNA", "Actin"], metadata={"Plate": "P9", "Well": "H12"})
    assert cells.compartment_names == ("Nuclei", "Cells", "Cytoplasm") and len(cells) == 4
    assert set(cells.metadata["Metadata_Plate"]) == {"P9"}
    assert set(cells.metadata["Metadata_Well"]) == {"H12"}  # given metadata wins
    assert set(cells.metadata["Metadata_Site"]) == {3}  # the file name fills the rest
    (tmp_path / "boxes" / name.replace(".tif", ".xml")).write_text(
        "<annotation><object><name>live</name><bndbox><xmin>3</xmin><ymin>3</ymin>"
        "<xmax>22</xmax><ymax>20</ymax></bndbox></object></annotation>"
    )
    boxed = next(iter_cells(tmp_path / "images", tmp_path / "boxes", channels=["DNA", "Actin"],
                            save_labels=tmp_path / "masks"))
    saved = tifffile.imread(tmp_path / "masks" / name.replace(".tif", "_labels.tif"))
    assert saved.shape == CELLS.shape and saved.dtype == np.int32
    assert set(np.unique(saved)) == {0, 1}
    assert (saved > 0).sum() == boxed.mask(0).sum()
    assert not saved[:2].any() and not saved[:, 22:].any()  # inside its box


def test_cellprofiler_ids_never_share_a_name_with_metadata():
    from featcell.interop import featcell_names

    columns = ["ImageNumber", "Metadata_ImageNumber", "Location_Center_X",
               "Cells_Location_Center_X", "AreaShape_Area"]
    renamed = pd.Index(columns).map(lambda c: featcell_names(columns).get(c, c))
    assert not renamed.duplicated().any()  # two columns of one name broke train
    assert "AreaShape_Area" in renamed and sum(n.startswith("Metadata_") for n in renamed) == 4


def test_names_round_trip_with_two_located_compartments():
    # no Children column: the Cells_* features say the rows are cells
    columns = ["Metadata_ImageID", "Metadata_Location_Center_X", "Metadata_Location_Center_Y",
               "Metadata_Nuclei_Location_Center_X", "Metadata_Nuclei_Location_Center_Y",
               "Cells_AreaShape_Area", "Cells_Intensity_MeanIntensity_DNA", "CNN_Net_0000"]
    written = [cellprofiler_names(columns, "Cells").get(c, c) for c in columns]
    assert [featcell_names(written).get(c, c) for c in written] == columns


def test_anndata_of_a_cellprofiler_table_keeps_positions_and_missing_values_out_of_x():
    pytest.importorskip("anndata")
    table = pd.DataFrame({
        "Metadata_ImageID": ["a.tif", "a.tif", "a.tif"],
        "Metadata_ObjectNumber": [1.0, 2.0, 3.0],  # as a CSV reads them back
        "Metadata_Treatment": ["DMSO", None, np.nan],
        "ImageNumber": [1, 1, 1], "ObjectNumber": [1, 2, 3],
        "Location_Center_X": [3.0, 9.0, 5.0], "Location_Center_Y": [4.0, 1.0, 2.0],
        "AreaShape_Center_X": [3.0, 9.0, 5.0], "AreaShape_Area": [40.0, 52.0, 47.0],
        "Cells_Location_CenterMassIntensity_X_DNA": [3.1, 9.2, 5.0],
    })
    adata = to_anndata(table)
    assert adata.var_names.tolist() == ["AreaShape_Area"]
    assert_allclose(adata.obsm["spatial"], [[3, 4], [9, 1], [5, 2]])
    assert adata.obs_names.tolist() == ["a.tif:1", "a.tif:2", "a.tif:3"]
    assert adata.obs["Metadata_Treatment"].isna().tolist() == [False, True, True]


def test_napari_features_never_repeats_a_column():
    table = pd.DataFrame({"Metadata_ImageID": ["a.tif", "a.tif"],
                          "Metadata_ObjectNumber": [7, 2], "Prediction": ["dead", "live"],
                          "Metadata_Well": ["A01", "A01"], "Well": ["x", "y"]}).reset_index()
    out = napari_features(table, "a.tif")
    assert out["index"].tolist() == [2, 7] and not out.columns.duplicated().any()
    assert out.columns.tolist() == ["index", "index_2", "Prediction", "Metadata_Well", "Well"]
    # a wide table is built at once (column by column: 1,400 pandas warnings)
    wide = pd.concat([table, pd.DataFrame(np.ones((2, 1500)), columns=[f"f{i}" for i in
                                                                      range(1500)])], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert napari_features(wide, "a.tif").shape == (2, 1505)
