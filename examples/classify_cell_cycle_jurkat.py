"""Cell-cycle phase of single Jurkat cells: classical features vs CNN embedding vs both.

Data: 2,383 single Jurkat cells from imaging flow cytometry, 40x40 px, channels ``Ch3``
bright-field, ``Ch4`` a fluorescence marker, ``Ch6`` dark-field (side scatter); seven very
imbalanced phases (G1 637, S 643, G2 634, Prophase 404, Metaphase 37, Anaphase 10,
Telophase 18). Blasi et al., "Label-free cell cycle analysis for high-throughput imaging
flow cytometry", Nature Communications 2016 (BBBC048), via minh-doan/MLCP (BSD-3).

Protocol: the cells come from one flow-cytometry run and are independent samples, so
:func:`featcell.compare` runs stratified 5-fold CV (``groups="none"``), the same folds for
every candidate; balanced accuracy with a 95 % bootstrap interval over cells, and
per-phase recall from the pooled out-of-fold predictions. Two channel sets: label-free
(``Ch3`` + ``Ch6``, as in Blasi et al.) and all three channels.

Candidates (all class-balanced, on median-imputed, standardised features):

- ``classical+gnb``: :class:`featcell.CellFeatures` + Gaussian naive Bayes, the
  like-for-like line for the peer workflow;
- ``classical+lr`` / ``classical+svm``: the same features, logistic regression (C = 0.1)
  / RBF SVM;
- ``cnn+lr``: the bundled ImageNet EfficientNet-Lite0 embedding, one 1280-d embedding per
  channel (``input_size`` 64 px by default, for speed);
- ``both+lr``: classical and CNN features side by side.

Both feature extractors learn nothing from the data (no fitted state), so they are computed
once for all cells and only imputation, scaling and the head are fitted per fold; this is
the same model :func:`featcell.make_cell_classifier` builds, only faster to cross-validate.

Peer reference (CellProfiler features -> Gaussian naive Bayes, 10-fold CV, minh-doan/MLCP):
per-class recall 0.86/0.71/0.54/0.31/0.32/0.28/0.57 (G1, S, G2, Pro, Meta, Ana, Telo;
mean = balanced accuracy 0.51). Which channels the peer used for that figure is not stated
with it; compare with both of our lines. Note 10 Anaphase cells: its recall moves in steps
of 0.1 and its interval is wide.

Run from the repository root (about 2-4 minutes on 2 cores; ``--quick`` keeps 800 cells,
all the rare mitotic ones plus a stratified subsample, and uses 3 folds)::

    python examples/classify_cell_cycle_jurkat.py [--quick] [--input-size 64]
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
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from featcell import CellFeatures, CellSet, CNNEmbedding, compare
from featcell.heads import make_head

DATA = (
    Path(__file__).resolve().parents[1].parent
    / "shared" / "data" / "phenotype" / "jurkat_cell_cycle" / "cells.npz"
)
TASK = "jurkat cell cycle"
PHASES = ["G1", "S_phase", "G2", "Prophase", "Metaphase", "Anaphase", "Telophase"]
PEER_NB_RECALL = [0.86, 0.71, 0.54, 0.31, 0.32, 0.28, 0.57]
LR_C = 0.1
CHANNEL_SETS = {"label-free (Ch3+Ch6)": ["Ch3", "Ch6"], "all (Ch3+Ch4+Ch6)": ["Ch3", "Ch4", "Ch6"]}


def head(name):
    """Impute, scale and a class-balanced head, fitted per fold on precomputed features.

    The logistic regression gets C = 0.1 (featcell's default is 1.0) and at most 500
    iterations: on 4k nearly separable features the default runs for thousands of lbfgs
    iterations; the stronger penalty converges in a fraction of the time.
    """
    model = make_head(name, "classification", class_weight="balanced", random_state=0)
    if name == "lr":
        model.set_params(C=LR_C, max_iter=500)
    return Pipeline([
        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
        ("scale", StandardScaler()),
        ("head", model),
    ])


def load(max_cells=None):
    data = np.load(DATA)
    images, y = data["images"], data["phase"].astype(str)
    if max_cells is not None and max_cells < len(y):
        # keep every cell of the rare mitotic phases, subsample the others (stratified)
        rare = np.isin(y, ["Metaphase", "Anaphase", "Telophase"])
        common = np.flatnonzero(~rare)
        keep, _ = train_test_split(
            common, train_size=max_cells - rare.sum(), stratify=y[common], random_state=0
        )
        keep = np.sort(np.concatenate([keep, np.flatnonzero(rare)]))
        images, y = images[keep], y[keep]
    cells = CellSet.from_crops(images, channels=[str(c) for c in data["channels"]])
    return cells, y


def run(quick=False, input_size=64, folds=None, n_jobs=2, verbose=True):
    """Run the comparison; returns tidy rows task, candidate, metric, value, ci_low, ci_high."""
    say = print if verbose else (lambda *a, **k: None)
    if not DATA.exists():
        raise SystemExit(f"Jurkat cells not found at {DATA}")
    max_cells = 800 if quick else None
    folds = folds or (3 if quick else 5)
    cells, y = load(max_cells)
    say(f"Data: {len(y)} Jurkat cells"
        + (" (--quick: all Meta/Ana/Telo cells + a stratified subsample of the rest)" if max_cells else " (all)")
        + ": " + ", ".join(f"{p} {np.sum(y == p)}" for p in PHASES))

    start = time.perf_counter()
    classical = {
        label: CellFeatures(channels=channels).fit_transform(cells)
        for label, channels in CHANNEL_SETS.items()
    }
    t_classical = time.perf_counter() - start
    start = time.perf_counter()
    embedding = CNNEmbedding(input_size=input_size)
    Z = embedding.fit_transform(cells)
    names = embedding.get_feature_names_out().astype(str)
    t_cnn = time.perf_counter() - start
    say(f"features: classical {classical['all (Ch3+Ch4+Ch6)'].shape[1]} (all channels) in "
        f"{t_classical:.0f} s; CNN {Z.shape[1]} at {input_size} px in {t_cnn:.0f} s "
        f"({embedding.provider_})")
    say(f"Protocol: stratified {folds}-fold CV (cells independent, groups='none'), same folds "
        "for all candidates; balanced accuracy, 95% bootstrap CI over cells; per-class "
        "recall on pooled out-of-fold predictions.\n")

    rows, recall_rows = [], []
    for label, channels in CHANNEL_SETS.items():
        Xc = classical[label]
        Xz = Z[:, np.isin([n.rsplit("_", 1)[-1] for n in names], channels)]
        sets = {"classical": Xc, "cnn": Xz, "both": np.hstack([Xc, Xz])}
        candidates = {
            "classical+gnb": ("classical", "gnb"),
            "classical+lr": ("classical", "lr"),
            "classical+svm": ("classical", "svm"),
            "cnn+lr": ("cnn", "lr"),
            "both+lr": ("both", "lr"),
        }
        start = time.perf_counter()
        # compare() takes one X; give each candidate its columns through a selector.
        X = np.hstack([sets["classical"], sets["cnn"]])
        n_c = sets["classical"].shape[1]
        cols = {"classical": slice(0, n_c), "cnn": slice(n_c, X.shape[1]),
                "both": slice(0, X.shape[1])}
        estimators = {
            name: Pipeline([("select", Columns(cols[feat])), ("model", head(h))])
            for name, (feat, h) in candidates.items()
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter of lbfgs on 4k features
            res = compare(estimators, X, y, groups="none", cv=folds,
                          metrics=["balanced_accuracy", "accuracy", "f1_macro"], n_boot=500,
                          n_jobs=n_jobs)
        say(f"{label}: {time.perf_counter() - start:.0f} s")
        for name, result in res.results.items():
            summary = result.summary.set_index("metric")
            for metric in ("balanced_accuracy", "accuracy", "f1_macro"):
                s = summary.loc[metric]
                rows.append((TASK, f"{name} [{label}]", metric, s["pooled"], s["ci_low"],
                             s["ci_high"]))
            p = result.predictions
            rec = [np.mean(p["y_pred"][p["y_true"] == c] == c) for c in PHASES]
            recall_rows.append([f"{name} [{label}]", summary.loc["balanced_accuracy", "pooled"],
                                summary.loc["balanced_accuracy", "ci_low"],
                                summary.loc["balanced_accuracy", "ci_high"], *rec])
            for c, r in zip(PHASES, rec):
                rows.append((TASK, f"{name} [{label}]", f"recall_{c}", r, np.nan, np.nan))
    recall_rows.append(["peer CellProfiler+NB (published, 10-fold)",
                        np.mean(PEER_NB_RECALL), np.nan, np.nan, *PEER_NB_RECALL])
    rows.append((TASK, "peer CellProfiler+NB (published)", "balanced_accuracy",
                 np.mean(PEER_NB_RECALL), np.nan, np.nan))
    table = pd.DataFrame(recall_rows, columns=["candidate", "bal_acc", "ci_low", "ci_high",
                                               *[p[:5] for p in PHASES]])
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        say(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return pd.DataFrame(rows, columns=["task", "candidate", "metric", "value", "ci_low",
                                       "ci_high"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="800 cells, 3 folds")
    parser.add_argument("--input-size", type=int, default=64, help="CNN input side (px)")
    parser.add_argument("--folds", type=int, default=None)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    run(quick=args.quick, input_size=args.input_size, folds=args.folds)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
