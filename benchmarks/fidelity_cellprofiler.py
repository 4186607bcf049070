"""Fidelity of featcell's features against CellProfiler's own measurements (cp_measure).

For every feature that both compute, on real Coelho 2009 and DSB2018 images
and their hand-drawn masks: Pearson r over all objects and the largest
relative difference. Each family's pairing of names lives in
``benchmarks/_fidelity_<family>.py``.

Run::

    python benchmarks/fidelity_cellprofiler.py            # prints the table
    python benchmarks/fidelity_cellprofiler.py --csv out.csv

Needs ``pip install cp-measure`` (a benchmark peer, not a featcell dependency).
"""

import argparse
import importlib
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import benchmark_images

FAMILIES = ["morphology", "intensity", "texture", "colocalization"]
THRESHOLD = 0.999


def summarise(long):
    """Per feature: objects, Pearson r, max relative difference, pass/fail."""
    rows = []
    for (name, cp_name), part in long.groupby(["featcell_name", "cp_measure_name"], sort=False):
        a = part["featcell"].to_numpy(float)
        b = part["cp_measure"].to_numpy(float)
        ok = np.isfinite(a) & np.isfinite(b)
        a, b = a[ok], b[ok]
        denom = np.maximum(np.abs(b), 1e-12)
        rel = float(np.max(np.abs(a - b) / denom)) if a.size else np.nan
        if a.size > 1 and np.std(a) > 0 and np.std(b) > 0:
            r = float(np.corrcoef(a, b)[0, 1])
        else:  # constant over objects: agreement means equal values
            r = 1.0 if a.size and np.allclose(a, b, rtol=1e-6, atol=1e-9) else np.nan
        rows.append({"featcell_name": name, "cp_measure_name": cp_name, "objects": int(a.size),
                     "pearson_r": r, "max_rel_diff": rel})
    table = pd.DataFrame(rows)
    table["pass"] = table["pearson_r"] >= THRESHOLD
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", help="also write the per-feature table here")
    parser.add_argument("--families", nargs="*", default=FAMILIES)
    parser.add_argument("--n-coelho", type=int, default=4)
    parser.add_argument("--n-dsb", type=int, default=6)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    images = list(benchmark_images(args.n_coelho, args.n_dsb))
    frames = []
    for family in args.families:
        module = importlib.import_module(f"_fidelity_{family}")
        for name, image, labels in images:
            part = module.compare(image, labels)
            part["family"], part["image"] = family, name
            frames.append(part)
    long = pd.concat(frames, ignore_index=True)
    table = summarise(long)
    n_obj = len(long.drop_duplicates(["image", "object"]))
    print(f"# featcell vs cp_measure on {len(images)} real images ({n_obj} objects)")
    with pd.option_context("display.max_rows", None, "display.width", 160):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.6g}"))
    failing = table[~table["pass"]]
    print(f"\n{int(table['pass'].sum())}/{len(table)} features with r >= {THRESHOLD}")
    if len(failing):
        print("below threshold:", ", ".join(failing["featcell_name"]))
    if args.csv:
        table.to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
