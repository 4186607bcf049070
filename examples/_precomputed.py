"""Shared by the classification examples: pipelines over a precomputed feature matrix.

The examples measure every cell once (the feature steps learn nothing from other cells,
so this cannot leak), then cross-validate only impute → scale → head on column subsets.
"""

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin


class Columns(TransformerMixin, BaseEstimator):
    """A stateless column selector (slice of a precomputed feature matrix)."""

    def __init__(self, columns=None):
        self.columns = columns

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.asarray(X)[:, self.columns]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # NaN are imputed by the next step
        return tags
