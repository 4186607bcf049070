"""Ready-made per-cell classifiers (viability, cell line, phenotype) and per-image votes.

The pipelines are plain scikit-learn :class:`~sklearn.pipeline.Pipeline`
objects: inspect them, swap a step, grid-search their parameters. Counting
lives in :mod:`featcell.counting` (:func:`~featcell.make_counter`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from .cells import CellSet
from .features.cell_features import CellFeatures
from .heads import make_head

__all__ = ["make_cell_classifier", "predict_per_image"]

_FEATURES = ("classical", "cnn", "both", "trained_cnn", "classical+trained_cnn")


def make_cell_classifier(
    features="classical",
    head="svm",
    *,
    families=None,
    channels=None,
    cnn_params=None,
    class_weight="balanced",
    random_state=0,
    n_jobs=None,
    fusion="early",
):
    """A per-cell classifier: features → impute → scale → head.

    Parameters
    ----------
    features : {"classical", "cnn", "both", "trained_cnn", "classical+trained_cnn"}, \
default="classical"
        ``"classical"``: :class:`~featcell.CellFeatures` (morphology,
        intensity, texture, colocalization); ``"cnn"``:
        :class:`~featcell.CNNEmbedding` (a pretrained network); ``"both"``: the
        two side by side. ``"trained_cnn"``: a :class:`~featcell.CNNClassifier`
        trained on the cells, alone (no head; needs torch to fit);
        ``"classical+trained_cnn"``: classical features and the trained
        network's penultimate-layer embedding side by side, with ``head``.
    head : {"svm", "rf", "lr", "lr_cv", "gnb", "xgb", "mlp"}, default="svm"
        The classifier (see :func:`featcell.heads.make_head`); unused with
        ``"trained_cnn"``.
    families : list of str, default=None
        Classical families to compute (all by default).
    channels : list of str, default=None
        Channels to measure (all by default).
    cnn_params : dict, default=None
        Parameters of :class:`~featcell.CNNEmbedding` (e.g. ``input_size``), or
        of :class:`~featcell.CNNClassifier` for the trained network.
    class_weight : {"balanced", None}, default="balanced"
        Weight classes inversely to their frequency (imbalanced data such
        as dead cells or rare mitotic phases).
    random_state : int, default=0
        Seed of the head.
    n_jobs : int, default=None
        Number of jobs to run in parallel. ``None`` means 1 unless in a
        :obj:`joblib.parallel_backend` context. ``-1`` means using all
        processors.
    fusion : {"early", "late"}, default="early"
        How ``"classical+trained_cnn"`` combines the two: ``"early"``, the
        network's embedding next to the classical features before ``head``;
        ``"late"``, a :class:`~featcell.CNNFusionClassifier` pooling the
        network's probabilities with those of classical features → ``head``,
        weighted on the network's validation cells (the head never sees an
        embedding of cells the network trained on).

    Returns
    -------
    sklearn.pipeline.Pipeline
        Steps ``features``, ``impute`` (median; degenerate cells such as
        1-pixel objects give NaN for a few shape features), ``scale`` and
        ``head``. ``fit(CellSet, y)``, ``predict(CellSet)``.

    Examples
    --------
    >>> import numpy as np
    >>> from featcell import CellSet, make_cell_classifier
    >>> rng = np.random.default_rng(0)
    >>> crops = rng.random((20, 24, 24)).astype(np.float32) * 0.1
    >>> crops[:10, 6:18, 6:18] += 0.8   # large cells
    >>> crops[10:, 9:15, 9:15] += 0.8   # small cells
    >>> y = np.repeat(["big", "small"], 10)
    >>> cells = CellSet.from_crops(crops)
    >>> model = make_cell_classifier(head="lr", families=["morphology"]).fit(cells, y)
    >>> (model.predict(cells) == y).mean()
    np.float64(1.0)
    """
    if features not in _FEATURES:
        raise ValueError(f"features must be one of {_FEATURES}, got {features!r}")
    if fusion not in ("early", "late"):
        raise ValueError(f"fusion must be 'early' or 'late', got {fusion!r}")
    classical = CellFeatures(families, channels=channels, n_jobs=n_jobs)
    if "trained_cnn" in features:
        from .cnn import CNNClassifier

        params = {"channels": channels, "random_state": random_state, **(cnn_params or {})}
        trained = CNNClassifier(class_weight=class_weight, **params)
        if features == "trained_cnn":
            return Pipeline([("head", trained)])
        if fusion == "late":
            from .cnn import CNNFusionClassifier

            partner = make_cell_classifier(
                "classical", head, families=families, channels=channels,
                class_weight=class_weight, random_state=random_state, n_jobs=n_jobs,
            )
            return Pipeline([("head", CNNFusionClassifier(trained, partner))])
        step = FeatureUnion(
            [("classical", classical), ("cnn", trained)], verbose_feature_names_out=False
        )
    elif features == "classical":
        step = classical
    else:
        from .cnn import CNNEmbedding

        cnn = CNNEmbedding(**(cnn_params or {}))
        step = (
            cnn
            if features == "cnn"
            else FeatureUnion(
                [("classical", classical), ("cnn", cnn)], verbose_feature_names_out=False
            )
        )
    head = make_head(
        head, "classification", class_weight=class_weight, random_state=random_state, n_jobs=n_jobs
    )
    return Pipeline(
        [
            ("features", step),
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler()),
            ("head", head),
        ]
    )


def predict_per_image(model, cells, *, groups="image", method="proba"):
    """Aggregate per-cell predictions to one decision per image (or well).

    Parameters
    ----------
    model : fitted classifier
        Takes a :class:`~featcell.CellSet` (e.g. from
        :func:`make_cell_classifier`).
    cells : CellSet
        The cells to score.
    groups : str, default="image"
        Metadata column that defines the unit (``"image"``, ``"Well"``, ...).
    method : {"proba", "vote"}, default="proba"
        ``"proba"``: mean class probability over the image's cells, then
        argmax (needs ``predict_proba``); ``"vote"``: majority of per-cell
        predictions.

    Returns
    -------
    pandas.DataFrame
        One row per unit: ``n_cells``, the predicted class, and per-class
        mean probabilities or vote fractions.

    Examples
    --------
    >>> import numpy as np
    >>> from featcell import CellSet, make_cell_classifier, predict_per_image
    >>> crops = np.zeros((8, 20, 20), np.float32); crops[:4, 4:16, 4:16] = 1
    >>> crops[4:, 8:12, 8:12] = 1
    >>> cells = CellSet.from_crops(crops, image_id=list("aaaabbbb"))
    >>> y = np.repeat(["big", "small"], 4)
    >>> model = make_cell_classifier(head="lr", families=["morphology"]).fit(cells, y)
    >>> predict_per_image(model, cells)["prediction"].tolist()
    ['big', 'small']
    """
    if not isinstance(cells, CellSet):
        raise TypeError(f"cells must be a featcell.CellSet, got {type(cells).__name__}")
    if method not in ("proba", "vote"):
        raise ValueError(f"method must be 'proba' or 'vote', got {method!r}")
    check_is_fitted(model)
    unit = pd.Series(cells.groups(groups), name=groups)
    classes = np.asarray(model.classes_)
    if method == "proba":
        if not hasattr(model, "predict_proba"):
            raise ValueError("the model has no predict_proba; use method='vote'")
        scores = pd.DataFrame(model.predict_proba(cells), columns=classes)
    else:
        predicted = model.predict(cells)
        scores = pd.DataFrame(
            (predicted[:, None] == classes[None, :]).astype(float), columns=classes
        )
    table = scores.groupby(unit.to_numpy()).mean()
    table.index.name = groups
    table.insert(0, "prediction", classes[np.argmax(table.to_numpy(), axis=1)])
    table.insert(0, "n_cells", unit.value_counts().reindex(table.index).to_numpy())
    return table.reset_index()
