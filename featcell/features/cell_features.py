"""All classical feature families in one transformer: :class:`CellFeatures`."""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._base import CellFeatureTransformer, check_cellset, check_n_jobs, indexed_output
from .colocalization import Colocalization
from .intensity import Intensity
from .morphology import Morphology
from .texture import Texture

__all__ = ["FAMILIES", "CellFeatures"]

#: The classical families, in output order, and the transformer that measures each.
FAMILIES = {
    "morphology": Morphology,
    "intensity": Intensity,
    "texture": Texture,
    "colocalization": Colocalization,
}


class CellFeatures(CellFeatureTransformer):
    """Morphology, intensity, texture and colocalization features in one step.

    A convenience over ``make_union(Morphology(), Intensity(), ...)`` that
    keeps CellProfiler's column names unprefixed and skips colocalization when
    the cells have a single channel.

    Parameters
    ----------
    families : list of str, default=None
        Which of ``"morphology"``, ``"intensity"``, ``"texture"``,
        ``"colocalization"`` to compute. ``None`` means all of them.
    channels : list of str, default=None
        Channels to measure (all by default).
    compartment : str, default=None
        Prefix such as ``"Nuclei"`` for pycytominer-style names. Cells with
        compartments (:meth:`CellSet.from_compartments`) are measured in this
        one; with ``None``, in every one (``Nuclei_*``, ``Cells_*``,
        ``Cytoplasm_*`` columns).
    n_jobs : int, default=None
        Jobs in parallel over chunks of cells: ``None`` is 1 (unless in a
        :obj:`joblib.parallel_backend` context), ``-1`` all processors.

    Attributes
    ----------
    transformers_ : list of (str, transformer)
        The fitted per-family transformers.
    feature_names_out_ : ndarray of str
        Output column names.
    family_of_feature_ : ndarray of str
        The family of every output column (for grouped importance).

    Examples
    --------
    >>> import numpy as np
    >>> from featcell import CellSet, CellFeatures
    >>> labels = np.zeros((40, 40), np.int32); labels[5:15, 5:15] = 1; labels[20:34, 18:30] = 2
    >>> image = np.random.default_rng(0).random((40, 40)).astype(np.float32)
    >>> cells = CellSet.from_labels(image, labels, channels=["DNA"])
    >>> table = CellFeatures().set_output(transform="pandas").fit_transform(cells)
    >>> table.shape[0], "AreaShape_Area" in table
    (2, True)
    """

    def __init__(self, families=None, *, channels=None, compartment=None, n_jobs=None):
        self.families = families
        self.channels = channels
        self.compartment = compartment
        self.n_jobs = n_jobs

    def fit(self, X, y=None):
        """Fit every selected family on the cells.

        Parameters
        ----------
        X : CellSet
            The cells.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
            The fitted transformer.
        """
        check_n_jobs(self.n_jobs)
        X = check_cellset(X)
        families = (
            list(FAMILIES)
            if self.families is None
            else list([self.families] if isinstance(self.families, str) else self.families)
        )
        unknown = [f for f in families if f not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown families {unknown!r}; choose from {list(FAMILIES)}")
        if not families or len(set(families)) != len(families):
            raise ValueError(f"families={self.families!r}; expected None or a list of distinct "
                             f"families from {list(FAMILIES)}")
        n_channels = len(self._select_channels(X.channel_names))
        self.transformers_ = []
        # cells with compartments (CellSet.from_compartments): every family in every one
        compartments = getattr(X, "compartment_names", None)
        for compartment in compartments if self.compartment is None and compartments else [
            self.compartment
        ]:
            for family in families:
                if family == "colocalization" and n_channels < 2:
                    continue
                params = {"compartment": compartment, "n_jobs": self.n_jobs}
                if family != "morphology":
                    params["channels"] = self.channels
                self.transformers_.append((family, FAMILIES[family](**params).fit(X)))
        names = [t.get_feature_names_out() for _, t in self.transformers_]
        self.feature_names_out_ = np.concatenate(names) if names else np.empty(0, object)
        self.family_of_feature_ = np.array(
            [family for (family, _), n in zip(self.transformers_, names) for _ in n], dtype=object
        )
        return self

    def transform(self, X):
        """Measure every cell with every fitted family.

        Parameters
        ----------
        X : CellSet
            The cells.

        Returns
        -------
        features : ndarray of shape (n_cells, n_features)
        """
        check_is_fitted(self, "transformers_")
        X = check_cellset(X)
        parts = [t.transform(X) for _, t in self.transformers_]
        return indexed_output(self, np.hstack(parts) if parts else np.empty((len(X), 0)), X)
