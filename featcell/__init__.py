"""featcell: per-cell features and honest models for microscopy images.

The public API is re-exported here; see the README for examples.
"""

from . import metrics
from .batch import BatchResult, score_images
from .cells import CellSet
from .cnn import CNNEmbedding, make_cnn_pipeline
from .counting import ImageFeatures, make_counter
from .evaluation import ComparisonResult, EvaluationResult, compare, evaluate
from .features.cell_features import CellFeatures
from .features.colocalization import Colocalization
from .features.intensity import Intensity
from .features.morphology import Morphology
from .features.texture import Texture
from .heads import make_head
from .importance import family_importance
from .io import iter_cells, read_cells, read_image, read_labels, read_voc
from .metrics import bootstrap_ci
from .persist import load_model, save_model
from .report import write_report
from .segmentation import segment
from .tasks import make_cell_classifier, predict_per_image

__version__ = "0.1.0"

__all__ = [
    "BatchResult",
    "CNNEmbedding",
    "CellFeatures",
    "CellSet",
    "Colocalization",
    "ComparisonResult",
    "EvaluationResult",
    "ImageFeatures",
    "Intensity",
    "Morphology",
    "Texture",
    "__version__",
    "bootstrap_ci",
    "compare",
    "evaluate",
    "family_importance",
    "iter_cells",
    "load_model",
    "make_cell_classifier",
    "make_cnn_pipeline",
    "make_counter",
    "make_head",
    "metrics",
    "predict_per_image",
    "read_cells",
    "read_image",
    "read_labels",
    "read_voc",
    "save_model",
    "score_images",
    "segment",
    "write_report",
]
