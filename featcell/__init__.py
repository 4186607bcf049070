"""featcell: per-cell features and honest models for microscopy images.

The public API is re-exported here and imported lazily: ``import featcell`` loads no
submodule until one of its names is used, so the command line and every worker start fast.
See the README for examples.
"""

import importlib

__version__ = "0.1.0"

# public name -> the submodule that defines it (the one place that lists the public API)
_EXPORTS = {
    "BatchResult": "batch",
    "CNNClassifier": "cnn",
    "CNNDensityCounter": "cnn",
    "CNNEmbedding": "cnn",
    "CNNFusionClassifier": "cnn",
    "CellFeatures": "features.cell_features",
    "CellSet": "cells",
    "Colocalization": "features.colocalization",
    "ComparisonResult": "evaluation",
    "DensityCounter": "counting",
    "EvaluationResult": "evaluation",
    "ImageFeatures": "features.image",
    "Intensity": "features.intensity",
    "Morphology": "features.morphology",
    "PixelFeatures": "features.image",
    "Texture": "features.texture",
    "bootstrap_ci": "metrics",
    "compare": "evaluation",
    "density_target": "points",
    "evaluate": "evaluation",
    "family_importance": "importance",
    "iter_cells": "io",
    "load_model": "persist",
    "make_cell_classifier": "tasks",
    "make_cnn_pipeline": "cnn",
    "make_counter": "counting",
    "make_head": "heads",
    "napari_features": "interop",
    "predict_per_image": "tasks",
    "read_cells": "io",
    "read_image": "io",
    "read_image_metadata": "io",
    "read_labels": "io",
    "read_points": "points",
    "read_voc": "io",
    "save_model": "persist",
    "score_images": "batch",
    "segment": "segmentation",
    "segment_cells": "segmentation",
    "to_anndata": "interop",
    "write_report": "report",
}
_SUBMODULES = {"metrics"}

__all__ = sorted([*_EXPORTS, *_SUBMODULES, "__version__"])


def __getattr__(name):
    if name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted({*globals(), *__all__})
