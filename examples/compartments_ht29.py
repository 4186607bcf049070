"""Nuclei, cells and cytoplasm of every HT29 cell, measured as CellProfiler measures Cell Painting.

The field (CellProfiler's ``ExampleHuman``: ``d0`` DNA, ``d1`` phospho-histone H3, ``d2`` a
cell stain) goes through the pipeline a CellProfiler user builds for it:

1. nuclei from the DNA stain (:func:`featcell.segment`, IdentifyPrimaryObjects);
2. cells grown from the nuclei in the cell stain (:func:`featcell.segment_cells`,
   IdentifySecondaryObjects with the propagation method; the stain is bright at the cell
   edge and dim inside, so Otsu's threshold is taken on log intensities, CellProfiler's
   "log transform before thresholding");
3. the cytoplasm as the cell minus its nucleus, and each nucleus related to its cell
   (:meth:`featcell.CellSet.from_compartments`, IdentifyTertiaryObjects and RelateObjects);
4. every feature family in every compartment (:class:`featcell.CellFeatures`), one row
   per cell with ``Nuclei_*``, ``Cells_*`` and ``Cytoplasm_*`` columns.

It writes the table with CellProfiler's column names (Parquet, and h5ad when anndata is
installed), the nucleus and cell label images (to check the segmentation in napari), and
prints how the compartments differ, which cells are mitotic (PH3-bright nuclei), and how
the size, shape and intensity measurements of each compartment compare with cp_measure
(CellProfiler's measurement code as a library) run on that compartment's label image.

Run from the project root (about half a minute on 2 cores)::

    python examples/compartments_ht29.py [-o compartments_ht29]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import tifffile
from skimage.filters import threshold_otsu

from featcell import CellFeatures, CellSet, segment, segment_cells
from featcell.compartments import cytoplasm_labels
from featcell.interop import cellprofiler_names

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "viability" / "ht29_ph3"
STEM = "AS_09125_050116030001_D03f00"
CHANNELS = ["DNA", "PH3", "Cells"]


def cp_measure_agreement(table, labels, image, compartment):
    """Shared size/shape/intensity columns, and the share of values equal to cp_measure's."""
    from cp_measure.core.measureobjectintensity import get_intensity
    from cp_measure.core.measureobjectsizeshape import get_sizeshape

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = {f"AreaShape_{k}": v for k, v in get_sizeshape(labels, image).items()}
        # legacy=True: CellProfiler's own quartiles and edge pixels
        intensity = get_intensity(labels, image, legacy=True)
        theirs.update({f"{k}_DNA": v for k, v in intensity.items()})
    ids = np.unique(labels[labels > 0])
    number = "Nuclei_Number_Object_Number" if compartment == "Nuclei" else "Metadata_ObjectNumber"
    rows = np.searchsorted(ids, table[number].to_numpy())  # cp_measure's row of each cell
    same, total, compared = 0, 0, 0
    for name, values in theirs.items():
        column = f"{compartment}_{name}"
        if column not in table:
            continue
        ours = table[column].to_numpy(float)
        ref = np.asarray(values, float)[rows]
        same += int(np.isclose(ours, ref, rtol=1e-5, atol=1e-9, equal_nan=True).sum())
        total += len(ref)
        compared += 1
    return compared, same, total


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--output", default="compartments_ht29", help="output folder")
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"data not found: {DATA}")
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)

    planes = [tifffile.imread(DATA / f"{STEM}d{k}.tif") for k in range(3)]
    start = time.perf_counter()
    nuclei = segment(planes[0])
    cells = segment_cells(planes[2], nuclei, log_transform=True)
    segmented = time.perf_counter() - start
    X = CellSet.from_compartments(planes, {"Nuclei": nuclei, "Cells": cells}, CHANNELS,
                                  f"{STEM}.tif")
    start = time.perf_counter()
    features = CellFeatures().set_output(transform="pandas").fit_transform(X)
    measured = time.perf_counter() - start

    table = X.metadata.set_index(X.index).join(features)
    table = table.rename(columns=cellprofiler_names(table.columns, "Cells"))
    table.to_parquet(out / "ht29_cells.parquet")
    tifffile.imwrite(out / f"{STEM}_nuclei_labels.tif", nuclei)
    tifffile.imwrite(out / f"{STEM}_cells_labels.tif", cells)
    try:
        from featcell import to_anndata

        to_anndata(table, channels=CHANNELS).write_h5ad(out / "ht29_cells.h5ad")
    except ImportError:
        pass

    n_nuclei = len(np.unique(nuclei)) - 1
    print(f"{n_nuclei} nuclei, {len(X)} cells with nucleus and cytoplasm "
          f"(segmentation {segmented:.1f} s, {features.shape[1]} features in {measured:.1f} s)")
    for compartment in X.compartment_names:
        n = sum(c.startswith(f"{compartment}_") for c in features.columns)
        area = table[f"{compartment}_AreaShape_Area"].median()
        dna = table[f"{compartment}_Intensity_MeanIntensity_DNA"].median()
        stain = table[f"{compartment}_Intensity_MeanIntensity_Cells"].median()
        print(f"  {compartment:<9} {n:4d} features   median area {area:7.1f} px   "
              f"mean DNA {dna:.3f}   mean cell stain {stain:.3f}")

    ph3 = table["Nuclei_Intensity_MeanIntensity_PH3"].to_numpy()
    mitotic = ph3 > threshold_otsu(ph3)
    print(f"mitotic (PH3-bright nuclei, Otsu over cells): {mitotic.sum()} of {len(ph3)}; "
          f"their nuclei are {np.median(table['Nuclei_AreaShape_Area'][mitotic]):.0f} px vs "
          f"{np.median(table['Nuclei_AreaShape_Area'][~mitotic]):.0f} px, "
          f"DNA {np.median(table['Nuclei_Intensity_MeanIntensity_DNA'][mitotic]):.3f} vs "
          f"{np.median(table['Nuclei_Intensity_MeanIntensity_DNA'][~mitotic]):.3f}")

    try:
        import cp_measure  # noqa: F401
    except ImportError:
        print("cp_measure is not installed: no comparison")
    else:
        dna = planes[0].astype(np.float32).astype(np.float64) / 255.0
        references = {"Nuclei": nuclei, "Cells": cells,
                      "Cytoplasm": cytoplasm_labels(cells, nuclei)}
        for compartment, labels in references.items():
            kept = np.isin(labels, table["Metadata_ObjectNumber"]) if compartment != "Nuclei" \
                else np.isin(labels, table["Nuclei_Number_Object_Number"])
            compared, same, total = cp_measure_agreement(
                table, np.where(kept, labels, 0), dna, compartment
            )
            print(f"  vs cp_measure, {compartment:<9}: {compared} measurements x {len(table)} "
                  f"cells, {same} of {total} values equal (relative 1e-5, absolute 1e-9)")
    print(f"wrote {out / 'ht29_cells.parquet'} ({len(table)} rows x {table.shape[1]} columns) "
          f"and the label images to {out}/")


if __name__ == "__main__":
    main()
