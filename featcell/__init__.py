"""featcell: per-cell features and honest models for microscopy images.

The public API is re-exported here; see the README for examples.
"""

from .cells import CellSet
from .io import iter_cells, read_cells, read_image, read_labels, read_voc

__version__ = "0.1.0"

__all__ = [
    "CellSet",
    "__version__",
    "iter_cells",
    "read_cells",
    "read_image",
    "read_labels",
    "read_voc",
]
