"""U2OS vs NIH3T3 nuclei (Coelho et al. 2009): classical features vs CNN embedding vs both.

Data: 67 DNA-stain (Hoechst) images, about 1030x1349 px, of U2OS and NIH3T3 cells, with
hand-drawn nucleus label images; every labelled nucleus is one cell
(:meth:`featcell.CellSet.from_labels`, margin 8 px). Coelho, Shariff & Murphy, "Nuclear
segmentation in microscope cell images: a hand-segmented dataset and comparison of
algorithms", ISBI 2009. Subsampling: at most 25 nuclei per image, drawn at random (seed 0;
``--max-per-image 0`` keeps all 2,716); ``--quick`` keeps every second image and 15
nuclei per image.

Protocol: :func:`featcell.compare`, stratified 5-fold CV grouped by image (no image gives
nuclei to both training and test), the same folds for every candidate. Per cell: balanced
accuracy and accuracy of the pooled out-of-fold predictions, 95 % bootstrap intervals
resampling images. Per image: on each fold the candidate is fitted on the training images
and :func:`featcell.predict_per_image` (mean class probability over the image's nuclei,
then argmax) labels every test image; accuracy over images with a 95 % bootstrap interval.

Candidates (class-balanced heads on median-imputed, standardised features):
``classical+lr``/``classical+svm`` (:class:`featcell.CellFeatures`), ``cnn+lr`` (the bundled
ImageNet EfficientNet-Lite0 embedding, 1280-d, 64 px input) and ``both+lr``. The feature
extractors learn nothing from the data, so they are computed once and only imputation,
scaling and the head are fitted per fold (the model :func:`featcell.make_cell_classifier`
builds, only faster to cross-validate).

Run from the repository root (about 2-4 minutes on 2 loaded cores)::

    python examples/classify_cell_line_coelho2009.py [--quick] [--max-per-image 25]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from _precomputed import Columns
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from featcell import CellFeatures, CellSet, CNNEmbedding, compare, predict_per_image
from featcell.heads import make_head
from featcell.io import read_image, read_labels
from featcell.metrics import bootstrap_ci

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cell_line" / "coelho2009"
TASK = "cell line (Coelho 2009)"
METRICS = ["balanced_accuracy", "accuracy", "roc_auc"]
MAX_PER_IMAGE = 25  # classical texture on ~2.7k large nuclei takes minutes on loaded cores


class _OnCells(ClassifierMixin, BaseEstimator):
    """A model fitted on precomputed features, scoring CellSets by looking their rows up.

    Lets :func:`featcell.predict_per_image` run on the per-fold models without computing
    the (stateless) features again. Built already fitted (``model`` is).
    """

    def __init__(self, model=None, X=None, cells=None):
        self.model, self.X, self.cells = model, X, cells
        keys = zip(cells.groups("image"), cells.metadata["Metadata_ObjectNumber"])
        self.row_ = {key: i for i, key in enumerate(keys)}
        self.classes_ = model.classes_

    def fit(self, X=None, y=None):
        return self  # already fitted

    def _rows(self, cells):
        keys = zip(cells.groups("image"), cells.metadata["Metadata_ObjectNumber"])
        return np.array([self.row_[key] for key in keys])

    def predict_proba(self, cells):
        return self.model.predict_proba(self.X[self._rows(cells)])

    def predict(self, cells):
        return self.model.predict(self.X[self._rows(cells)])


def candidate(columns, head):
    """Columns of the precomputed features → impute → scale → class-balanced head."""
    return Pipeline([
        ("select", Columns(columns)),
        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
        ("scale", StandardScaler()),
        ("head", make_head(head, "classification", class_weight="balanced", random_state=0)),
    ])


def load_cells(step=1, max_per_image=None):
    """Labelled nuclei of every `step`-th image (at most `max_per_image` each, drawn at
    random with seed 0), and the cell line of each."""
    table = pd.read_csv(DATA / "images.csv").iloc[::step]
    parts, lines = [], []
    rng = np.random.default_rng(0)
    for name, line in zip(table["image"], table["cell_line"]):
        image = read_image(DATA / "images" / name)
        labels = read_labels(DATA / "labels" / name)
        found = CellSet.from_labels(image, labels, channels=["DNA"], image_id=name, margin=8)
        if max_per_image is not None and len(found) > max_per_image:
            found = found[np.sort(rng.choice(len(found), max_per_image, replace=False))]
        parts.append(found)
        lines += [line] * len(found)
    return CellSet.concat(parts), np.asarray(lines), dict(zip(table["image"], table["cell_line"]))


def run(quick=False, input_size=64, folds=5, max_per_image=MAX_PER_IMAGE, verbose=True):
    """Run the comparison; returns tidy rows task, candidate, metric, value, ci_low, ci_high."""
    say = print if verbose else (lambda *a, **k: None)
    if not DATA.is_dir():
        raise SystemExit(f"Coelho 2009 data not found at {DATA}")
    start = time.perf_counter()
    if quick:
        max_per_image = min(max_per_image or 15, 15)
    cells, y, line_of = load_cells(step=2 if quick else 1, max_per_image=max_per_image)
    image = cells.groups("image")
    per_image = pd.Series(line_of).value_counts()
    say(f"Data: {len(line_of)} images ({', '.join(f'{k} {v}' for k, v in per_image.items())})"
        + (" (--quick: every second image)" if quick else " (all)")
        + (f", at most {max_per_image} random nuclei per image" if max_per_image else "")
        + f", {len(cells)} hand-labelled nuclei: "
        + ", ".join(f"{c} {n}" for c, n in zip(*np.unique(y, return_counts=True)))
        + f" (read in {time.perf_counter() - start:.0f} s)")

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
    say(f"Protocol: stratified {folds}-fold CV grouped by image ({len(line_of)} images), "
        "same folds for all candidates; per-cell pooled out-of-fold metrics with 95% "
        "bootstrap CI resampling images; per-image label = predict_per_image (mean "
        "probability) of the fold's model on its test images, 95% bootstrap CI over images.\n")
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs convergence chatter
        res = compare(estimators, X, y, groups=image, cv=folds, metrics=METRICS, n_boot=1000)
    rows = []
    for name, result in res.results.items():
        summary = result.summary.set_index("metric")
        for metric in METRICS:
            s = summary.loc[metric]
            rows.append((TASK, name, f"cell_{metric}", s["pooled"], s["ci_low"], s["ci_high"]))
        votes = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for train, test in result.splits:  # the same folds compare() used
                model = clone(estimators[name]).fit(X[train], y[train])
                votes.append(predict_per_image(_OnCells(model, X, cells), cells[test]))
        votes = pd.concat(votes, ignore_index=True)
        truth = votes["image"].map(line_of).to_numpy()
        acc, low, high = bootstrap_ci("accuracy", truth, votes["prediction"].to_numpy(),
                                      n_boot=1000)
        rows.append((TASK, name, "image_accuracy", acc, low, high))
        wrong = votes.loc[votes["prediction"].to_numpy() != truth, "image"].tolist()
        say(f"{name}: {len(wrong)} of {len(votes)} images wrong"
            + (f" ({', '.join(wrong)})" if wrong else ""))
    say(f"cross-validation: {time.perf_counter() - start:.0f} s\n")
    table = pd.DataFrame(rows, columns=["task", "candidate", "metric", "value", "ci_low",
                                        "ci_high"])
    shown = table.assign(cell=[f"{v:.3f} [{lo:.3f}-{hi:.3f}]" for v, lo, hi in
                               table[["value", "ci_low", "ci_high"]].to_numpy()])
    order = [f"cell_{m}" for m in METRICS] + ["image_accuracy"]
    say(shown.pivot(index="candidate", columns="metric", values="cell")
        .loc[list(estimators), order].to_string())
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every second image")
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--max-per-image", type=int, default=MAX_PER_IMAGE,
                        help="nuclei per image, random (0 = all)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    run(quick=args.quick, input_size=args.input_size, folds=args.folds,
        max_per_image=args.max_per_image or None)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
