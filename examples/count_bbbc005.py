"""Counting nuclei in BBBC005 (SIMCEP synthetic images) at three focus-blur levels.

Grouping. File names read ``<well>_C<count>_F<blur>_s<site>_w1.png``. The well's row
encodes the blur (A = F1, H = F23, P = F48) and its column the count, so an image is
identified by (count, site) plus its blur: the same simulated field appears at up to
three blur levels (65 fields at two, 6 at three). Those copies show the same nuclei, so
they must not be split between training and test; the groups are therefore *fields*
(count, site). A stricter scheme groups by *count*, so that every test count is unseen in
training, which tests interpolation between counts (there are 24 distinct counts).
Both use 5-fold ``GroupKFold``; the MAE is reported per blur level, pooled over folds.

Counters:

- ``segmentation``: objects of :func:`featcell.segmentation.segment` with its defaults, raw
  and linearly calibrated on the training folds (what ``SegmentationCounter.fit``
  does), counting objects or, with ``count_by="area"``, each object as its area over
  the typical nucleus area;
- ``regression``: :class:`featcell.ImageFeatures` → ``StandardScaler`` → head
  (ridge ``lr``, random forest ``rf``, XGBoost ``xgb``).

Features and segmentations are computed once per image (they have no fitted state); the
segmentation counts are the ``Image_Segmentation_Count`` and
``Image_Segmentation_ClumpCorrectedCount`` columns of the features, which equal
``SegmentationCounter(calibrate=False)`` with ``count_by="objects"`` and ``"area"``.
Only calibrations, scalers and heads are fitted, on each training fold.

Run from the project root (about 4-5 minutes on 2 cores)::

    python examples/count_bbbc005.py [--n-jobs 2]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from featcell.features.image import ImageFeatures
from featcell.heads import make_head

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "counting" / "bbbc005"
BLURS = ["F1", "F23", "F48"]


def cross_predict(fit_predict, X, y, groups):
    """Out-of-fold predictions of ``fit_predict(X_train, y_train, X_test)``, 5 grouped folds."""
    predicted = np.empty(len(y))
    for train, test in GroupKFold(n_splits=5).split(X, y, groups):
        predicted[test] = fit_predict(X[train], y[train], X[test])
    return predicted


def head(name):
    def fit_predict(X_train, y_train, X_test):
        model = make_pipeline(StandardScaler(), make_head(name, "regression"))
        return model.fit(X_train, y_train).predict(X_test)

    return fit_predict


def calibrated(X_train, y_train, X_test):
    slope, intercept = np.polyfit(X_train[:, 0], y_train, 1)
    return intercept + slope * X_test[:, 0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-jobs", type=int, default=2)
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"BBBC005 not found at {DATA}")
    table = pd.read_csv(DATA / "counts.csv")
    parts = table["image"].str.extract(r"^(?P<well>[A-P]\d+)_C(?P<c>\d+)_F\d+_s(?P<site>\d+)_w1")
    table["field"] = "C" + parts["c"] + "_s" + parts["site"]
    y = table["count"].to_numpy(dtype=float)

    features = ImageFeatures(n_jobs=args.n_jobs)
    X = features.fit_transform([DATA / "images" / name for name in table["image"]])
    names = list(features.get_feature_names_out())
    objects = X[:, [names.index("Image_Segmentation_Count")]]
    by_area = X[:, [names.index("Image_Segmentation_ClumpCorrectedCount")]]

    rows = []
    for scheme, groups in [("field", table["field"]), ("count", table["count"])]:
        predictions = {
            "segmentation (objects), raw": objects[:, 0],
            "segmentation (area), raw": by_area[:, 0],
            "segmentation (objects), calibrated": cross_predict(calibrated, objects, y, groups),
            "segmentation (area), calibrated": cross_predict(calibrated, by_area, y, groups),
        }
        for name in ("lr", "rf", "xgb"):
            predictions[f"regression, {name}"] = cross_predict(head(name), X, y, groups)
        for counter, predicted in predictions.items():
            error = np.abs(predicted - y)
            row = {"grouped by": scheme, "counter": counter}
            row.update({blur: error[table["blur"] == blur].mean() for blur in BLURS})
            row["all"] = error.mean()
            rows.append(row)

    print(
        f"BBBC005: {len(y)} images ({', '.join(f'{b} {(table.blur == b).sum()}' for b in BLURS)}),"
        f" {table['field'].nunique()} fields, {table['count'].nunique()} counts "
        f"({int(y.min())}-{int(y.max())}); MAE per blur level, 5-fold GroupKFold"
    )
    print(pd.DataFrame(rows).set_index(["grouped by", "counter"]).round(2).to_string())


if __name__ == "__main__":
    main()
