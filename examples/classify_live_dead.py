"""Live vs dead cells in bright-field images: classical features vs CNN embedding vs both.

Data: the "Living and Dead Cell (LDC)" dataset (maxKudi/Cell-Dataset, MIT licence):
1,250 bright-field images, 219x225 px, with Pascal VOC boxes named ``Living Cell`` or
``Dead Cell`` (about 4.6 live per dead; the author notes some label errors). Images are
read as grey with :func:`featcell.read_cells`, one cell per box (box names land in
``Metadata_Class``). Subsampling: a fixed random subset of 250 images (seed 0; 120 with
``--quick``), to keep the run within a few minutes on 2 cores.

Protocol: :func:`featcell.compare`, stratified 5-fold CV grouped by image (no image gives
cells to both training and test), the same folds for every candidate; balanced accuracy
and ROC AUC of the pooled out-of-fold predictions with 95 % bootstrap intervals that
resample images.

Candidates (class-balanced heads on median-imputed, standardised features):
``classical+lr``/``classical+svm`` (:class:`featcell.CellFeatures`), ``cnn+lr`` (the
bundled ImageNet EfficientNet-Lite0 embedding, 1280-d, 64 px input) and ``both+lr``.
The feature extractors learn nothing from the data, so they are computed once and only
imputation, scaling and the head are fitted per fold (the model
:func:`featcell.make_cell_classifier` builds, only faster to cross-validate).

Run from the repository root (about 1-2 minutes on 2 cores)::

    python examples/classify_live_dead.py [--quick] [--n-images 250]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from _precomputed import Columns
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from featcell import CellFeatures, CNNEmbedding, compare, read_cells
from featcell.heads import make_head

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "viability" / "live_dead"
TASK = "live/dead (LDC)"
METRICS = ["balanced_accuracy", "roc_auc", "accuracy"]


def candidate(columns, head):
    """Columns of the precomputed features → impute → scale → class-balanced head."""
    return Pipeline([
        ("select", Columns(columns)),
        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
        ("scale", StandardScaler()),
        ("head", make_head(head, "classification", class_weight="balanced", random_state=0)),
    ])


def load_cells(n_images=250):
    """Cells of a fixed random subset of ``n_images`` images (seed 0), their live/dead
    labels, and the numbers of images picked and available."""
    paths = sorted((DATA / "images").glob("*.png"))
    pick = np.sort(np.random.default_rng(0).choice(len(paths), min(n_images, len(paths)),
                                                   replace=False))
    cells = read_cells([paths[i] for i in pick], DATA / "annotations", as_gray=True)
    y = np.where(cells.metadata["Metadata_Class"].str.startswith("Dead"), "dead", "live")
    return cells, y, len(pick), len(paths)


def run(quick=False, n_images=None, input_size=64, folds=5, verbose=True):
    """Run the comparison; returns tidy rows task, candidate, metric, value, ci_low, ci_high."""
    say = print if verbose else (lambda *a, **k: None)
    if not DATA.is_dir():
        raise SystemExit(f"live/dead data not found at {DATA}")
    n_images = n_images or (120 if quick else 250)
    start = time.perf_counter()
    cells, y, n_picked, n_all = load_cells(n_images)
    image = cells.groups("image")
    say(f"Data: LDC bright-field, {n_picked} of {n_all} images (random, seed 0), "
        f"{len(cells)} cells: live {np.sum(y == 'live')}, dead {np.sum(y == 'dead')} "
        f"(read in {time.perf_counter() - start:.0f} s)")

    start = time.perf_counter()
    Xc = CellFeatures().fit_transform(cells)
    t_c = time.perf_counter() - start
    start = time.perf_counter()
    embedding = CNNEmbedding(input_size=input_size)
    Xz = embedding.fit_transform(cells)
    say(f"features: classical {Xc.shape[1]} in {t_c:.0f} s; CNN {Xz.shape[1]} at "
        f"{input_size} px in {time.perf_counter() - start:.0f} s ({embedding.provider_})")
    X = np.hstack([Xc, Xz])
    classical, cnn, both = slice(0, Xc.shape[1]), slice(Xc.shape[1], X.shape[1]), slice(None)
    estimators = {
        "classical+lr": candidate(classical, "lr"),
        "classical+svm": candidate(classical, "svm"),
        "cnn+lr": candidate(cnn, "lr"),
        "both+lr": candidate(both, "lr"),
    }
    say(f"Protocol: stratified {folds}-fold CV grouped by image ({len(np.unique(image))} "
        "images), same folds for all candidates; pooled out-of-fold metrics, 95% bootstrap "
        "CI resampling images.\n")
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs convergence chatter on 1.7k features
        res = compare(estimators, X, y, groups=image, cv=folds, metrics=METRICS, n_boot=1000)
    say(f"cross-validation: {time.perf_counter() - start:.0f} s")
    rows = []
    for name, result in res.results.items():
        summary = result.summary.set_index("metric")
        for metric in METRICS:
            s = summary.loc[metric]
            rows.append((TASK, name, metric, s["pooled"], s["ci_low"], s["ci_high"]))
    table = pd.DataFrame(rows, columns=["task", "candidate", "metric", "value", "ci_low",
                                        "ci_high"])
    shown = table.assign(cell=[f"{v:.3f} [{lo:.3f}-{hi:.3f}]" for v, lo, hi in
                               table[["value", "ci_low", "ci_high"]].to_numpy()])
    say(shown.pivot(index="candidate", columns="metric", values="cell")
        .loc[list(estimators), METRICS].to_string())
    paired = res.paired[["candidate_a", "candidate_b", "pooled_diff", "diff_ci_low",
                         "diff_ci_high", "p_value_corrected", "p_value_bootstrap"]]
    say("\npaired differences in balanced accuracy (a - b):")
    say(paired.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="120 images")
    parser.add_argument("--n-images", type=int, default=None)
    parser.add_argument("--input-size", type=int, default=64)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    run(quick=args.quick, n_images=args.n_images, input_size=args.input_size)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
