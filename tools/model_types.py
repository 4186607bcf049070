"""List every type a featcell model file can hold: the source of persist's allow-list.

Builds and fits every pipeline featcell's own builders make (``make_cell_classifier``
for each feature set and head, ``make_counter`` for each method and head, the command
line's tables-only and cells pipelines), dumps each with skops and prints the sorted
union of the types named in the dumps. Paste new names into
``featcell.persist._FEATCELL_TYPES`` (or into ``_TRUSTED_EXTRA`` of the module that
adds an estimator); ``tests/test_persist.py`` checks the list still covers them.

Run from the repository root: ``python tools/model_types.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def fitted_models(fast=False):
    """``{name: fitted estimator}`` for every pipeline featcell builds.

    ``fast=True`` skips the CNN-based ones (seconds instead of a minute).
    """
    import numpy as np
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import FeatureUnion, Pipeline
    from sklearn.preprocessing import StandardScaler

    from featcell import CellSet
    from featcell.counting import make_counter
    from featcell.features.cell_features import CellFeatures
    from featcell.heads import HEADS, make_head
    from featcell.tasks import make_cell_classifier

    rng = np.random.default_rng(0)
    crops = rng.random((24, 2, 20, 20)).astype(np.float32) * 0.1
    crops[:12, :, 5:15, 5:15] += 0.8
    crops[12:, :, 8:12, 8:12] += 0.8
    cells = CellSet.from_crops(crops, channels=["DNA", "Actin"])
    y = np.repeat(["live", "dead"], 12)
    images = [rng.random((40, 40)) * (rng.random((40, 40)) < k / 60) for k in range(1, 13)]
    counts = np.arange(1, 13, dtype=float)
    models = {}
    feature_sets = ("classical",) if fast else ("classical", "cnn", "both")
    for features in feature_sets:
        for head in HEADS:
            cnn = {"input_size": 32}
            models[f"cells/{features}/{head}"] = make_cell_classifier(
                features, head, families=["morphology", "intensity", "texture",
                                          "colocalization"], cnn_params=cnn,
            ).fit(cells, y)
    table = rng.normal(size=(24, 5))
    for head in HEADS:  # the command line's table-only models
        rest = Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                         ("scale", StandardScaler()),
                         ("head", make_head(head, "classification"))])
        models[f"table/classification/{head}"] = rest.fit(table, y)
        if head != "gnb":
            regression = Pipeline([*rest.steps[:2], ("head", make_head(head, "regression"))])
            models[f"table/regression/{head}"] = regression.fit(table, np.arange(24.0))
    models["counter/segmentation"] = make_counter("segmentation").fit(images, counts)
    for head in ("lr", "rf", "svm", "xgb", "mlp"):
        models[f"counter/regression/{head}"] = make_counter("regression", head).fit(images, counts)
        if not fast:
            models[f"counter/cnn/{head}"] = make_counter("cnn", head, input_size=32).fit(
                images, counts)
    dots = [np.argwhere(image > 0)[:k + 1].astype(float) for k, image in enumerate(images)]
    for head in ("xgb", "rf", "lr"):
        models[f"counter/density/{head}"] = make_counter(
            "density", head, sigma=2.0, n_samples=2000, cv=2).fit(images, dots)
    if not fast:
        models["counter/density/filters+cnn"] = make_counter(
            "density", "lr", features="filters+cnn", sigma=2.0, n_samples=2000, cv=2
        ).fit(images, dots)
    if not fast:  # featcell's own trained networks (torch to train, ONNX inside the file)
        trained = {"width": 8, "max_epochs": 1, "batch_size": 8}
        for features in ("trained_cnn", "classical+trained_cnn"):
            models[f"cells/{features}"] = make_cell_classifier(
                features, "lr", families=["morphology"], cnn_params=trained).fit(cells, y)
        models["counter/cnn_density"] = make_counter(
            "cnn_density", sigma=2.0, width=8, max_epochs=1, patch_size=32,
            patches_per_epoch=8).fit(images, dots)
    if not fast:  # the command line's FeatureUnion of classical + cnn for train
        from featcell.cnn import CNNEmbedding

        union = FeatureUnion([("classical", CellFeatures(["morphology"])),
                              ("cnn", CNNEmbedding(input_size=32))],
                             verbose_feature_names_out=False)
        models["cells/union"] = Pipeline([("features", union), *rest.steps]).fit(cells, y)
    return models


def model_types(fast=False):
    """Sorted union of the type names in the skops dumps of :func:`fitted_models`."""
    import skops.io as sio

    from featcell.persist import _types_in_payload

    found = set()
    for model in fitted_models(fast).values():
        found |= _types_in_payload(sio.dumps(model))
    return sorted(found)


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore")
    for name in model_types(fast="--fast" in sys.argv):
        print(f'    "{name}",')
