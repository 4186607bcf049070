"""CNNs for cells and images: pretrained embeddings and networks trained on your cells.

ONNX networks run through onnxruntime (CUDA when present); torch is needed only to
train (the ``featcell[train]`` extra).

- :mod:`featcell.cnn._sessions`: model files, execution providers, shared sessions;
- :mod:`featcell.cnn._preprocess`: crops and images made network-ready;
- :mod:`featcell.cnn.embedding`: :class:`CNNEmbedding`, :func:`make_cnn_pipeline`;
- :mod:`featcell.cnn.trained`: :class:`CNNClassifier`, a CNN trained on your cells;
- :mod:`featcell.cnn.fusion`: :class:`CNNFusionClassifier`, its probabilities pooled with another model's;
- :mod:`featcell.cnn.density`: :class:`CNNDensityCounter`, a density FCN trained from dots;
- :mod:`featcell.cnn._training`: the torch side (networks, augmentation, loop, export).

The public classes keep ``featcell.cnn`` as their module, the name saved model files
record.
"""

from ._preprocess import (  # noqa: F401 - constants the benchmarks and tools read
    DEFAULT_INPUT_SIZE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    MIN_INPUT_SIZE,
)
from ._sessions import BUNDLED_MODEL
from .density import CNNDensityCounter
from .embedding import CNNEmbedding, make_cnn_pipeline
from .fusion import CNNFusionClassifier
from .trained import CNNClassifier

__all__ = [
    "BUNDLED_MODEL",
    "CNNClassifier",
    "CNNDensityCounter",
    "CNNEmbedding",
    "CNNFusionClassifier",
    "make_cnn_pipeline",
]

for _public in (
    CNNClassifier, CNNDensityCounter, CNNEmbedding, CNNFusionClassifier, make_cnn_pipeline
):
    _public.__module__ = __name__  # the name model files record: featcell.cnn.CNNEmbedding
del _public
