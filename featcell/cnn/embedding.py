"""CNN embeddings of cells and whole images with ONNX models run by onnxruntime.

:class:`CNNEmbedding` turns every cell of a :class:`~featcell.CellSet` (or every
whole image) into the feature vector of a pretrained convolutional network,
doing the preprocessing a biologist should not have to think about: crop with
context, optional background masking, aspect-preserving resize, percentile
normalisation of any bit depth, grey to RGB, ImageNet mean/std.

The bundled model is EfficientNet-Lite0 trained on ImageNet (Apache-2.0, see
``featcell/models/NOTICE.md``); any ONNX model with one ``(N, 3, H, W)`` float
input can replace it. PyTorch is never needed at run time.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..cells import CellSet
from ..features._base import indexed_output
from ..heads import make_head
from ..io import read_image
from ._preprocess import (
    _OFFSET,
    _SCALE,
    DEFAULT_INPUT_SIZE,
    MIN_INPUT_SIZE,
    _batches,
    _cell_batches,
    _check_finite,
    _dihedral_views,
    _fit_batch,
    _intensity_range,
    _select_channels,
    _tiles,
)
from ._sessions import (
    _OPTIMIZATION,
    _file_sha256,
    _get_session,
    _model_name,
    _resolve_model,
    _resolve_providers,
)

__all__ = ["CNNEmbedding", "make_cnn_pipeline"]

# ---------------------------------------------------------------------- estimator
class CNNEmbedding(TransformerMixin, BaseEstimator):
    """Embed cells or whole images with a pretrained CNN (ONNX, onnxruntime).

    Each cell of a :class:`~featcell.CellSet` gives one row: its crop (with the
    context margin the CellSet keeps) is rescaled to ``[0, 1]`` between its
    intensity percentiles, optionally masked to the cell, resized to fit
    ``input_size`` keeping its aspect ratio (zero padded), made RGB, normalised
    with the ImageNet mean/std and passed through the network.

    A list of whole images (arrays or file paths) gives one row per image: the
    image is percentile-normalised, cut into ``tile_size`` tiles, every tile is
    embedded and the tile embeddings are averaged.

    Parameters
    ----------
    model : str or path-like, default=None
        ONNX model file. ``None`` uses the bundled EfficientNet-Lite0 (ImageNet,
        1280 features). A user model needs one ``(N, 3, H, W)`` float32 input
        expecting ImageNet-normalised RGB, and a first output of shape
        ``(N, D)`` or ``(N, D, h, w)`` (then averaged over ``h, w``).
    input_size : int, default=None
        Side of the square network input, at least 32. ``None`` uses the
        model's fixed input size, or 96 for models with dynamic spatial axes
        such as the bundled one (multiples of 32 suit it best). On real nuclei
        and flow-cytometry cells 64-160 px gave the same accuracy within noise,
        and 96 px runs about twice as fast as 128 px.
    channels : str or list of str, default=None
        Channels to embed, by name; ``None`` embeds all. Images given as arrays
        or files have channels ``Ch1``, ``Ch2``, ...
    channel_mode : {"per_channel", "rgb"}, default="per_channel"
        ``"per_channel"`` embeds every channel as a grey image and
        concatenates the embeddings (names end with the channel name);
        ``"rgb"`` maps the first three (selected) channels to red, green and
        blue (missing ones stay black) and embeds once.
    mask_background : bool, default=False
        Set pixels outside the cell mask to black and take the intensity
        percentiles inside the mask (CellSet input only), so the embedding sees
        the cell and not its neighbours.
    percentiles : tuple of two floats, default=(1.0, 99.8)
        Per-crop (per-image) and per-channel percentiles mapped to black and
        white, which makes 8-, 12-, 16-bit and float data alike (estimated on
        at most 2048 evenly spaced pixels). ``None`` uses intensities as stored
        (clipped to ``[0, 1]``).
    tile_size : int, default=None
        Tile side in image pixels for whole images; tiles are resized to
        ``input_size``. ``None`` uses ``input_size`` (native resolution).
    tta : bool, default=False
        Test-time augmentation: average the embeddings of the 8 flips and
        90-degree rotations, making them orientation invariant (8 times slower).
    batch_size : int, default=32
        Network inputs per onnxruntime call.
    providers : "auto" or list of str, default="auto"
        onnxruntime execution providers. ``"auto"`` uses
        ``CUDAExecutionProvider`` when onnxruntime reports it available, else
        ``CPUExecutionProvider``.
    n_threads : int, default=None
        onnxruntime intra-op threads; ``None`` lets onnxruntime choose (one per
        physical core). Set 1 when running many joblib workers.
    graph_optimization : {"all", "extended", "basic", "disable"}, default="all"
        onnxruntime graph optimisation level.

    Attributes
    ----------
    model_name_ : str
        Model name used in feature names (``featcell.model_name`` metadata of
        the ONNX file, else its file stem).
    model_sha256_ : str
        SHA-256 of the model file.
    provider_ : str
        Execution provider onnxruntime actually uses.
    providers_ : tuple of str
        Execution providers requested (``providers`` with ``"auto"`` resolved).
    input_size_ : int
        Network input side used.
    n_dims_ : int
        Embedding length per network input (1280 for the bundled model).
    channels_ : tuple of str
        Channels embedded.
    channel_names_in_ : tuple of str
        Channels of the data seen in ``fit``.
    feature_names_out_ : ndarray of str
        ``CNN_<model>_<i>`` (``rgb``) or ``CNN_<model>_<i>_<channel>``
        (``per_channel``).
    session_ : onnxruntime.InferenceSession
        The process-wide session (a property: never pickled, rebuilt on demand
        in other processes).

    See Also
    --------
    make_cnn_pipeline : embedding, scaling and a classifier head in one pipeline.

    Notes
    -----
    One onnxruntime session per model, providers and thread count is built per
    process and shared by all estimators, so cloning in cross-validation costs
    nothing; a pickled estimator (joblib workers, ``skops``) carries only its
    parameters and rebuilds the session lazily, after checking the model file
    still has the SHA-256 seen in ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> from featcell import CellSet
    >>> from featcell.cnn import CNNEmbedding
    >>> crops = np.random.default_rng(0).integers(0, 4000, (2, 1, 40, 40), dtype=np.uint16)
    >>> cells = CellSet.from_crops(crops, channels=["DNA"])
    >>> emb = CNNEmbedding(input_size=64).fit(cells)
    >>> emb.transform(cells).shape
    (2, 1280)
    >>> emb.get_feature_names_out()[0]
    'CNN_EfficientNetLite0_0000_DNA'
    """

    _parameter_constraints: ClassVar[dict] = {
        "model": [str, os.PathLike, None],
        "input_size": [Interval(Integral, MIN_INPUT_SIZE, None, closed="left"), None],
        "channels": [str, list, tuple, None],
        "channel_mode": [StrOptions({"per_channel", "rgb"})],
        "mask_background": ["boolean"],
        "percentiles": [tuple, list, None],
        "tile_size": [Interval(Integral, 1, None, closed="left"), None],
        "tta": ["boolean"],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "providers": [StrOptions({"auto"}), list, tuple],
        "n_threads": [Interval(Integral, 1, None, closed="left"), None],
        "graph_optimization": [StrOptions(set(_OPTIMIZATION))],
    }

    def __init__(
        self,
        model=None,
        *,
        input_size=None,
        channels=None,
        channel_mode="per_channel",
        mask_background=False,
        percentiles=(1.0, 99.8),
        tile_size=None,
        tta=False,
        batch_size=32,
        providers="auto",
        n_threads=None,
        graph_optimization="all",
    ):
        self.model = model
        self.input_size = input_size
        self.channels = channels
        self.channel_mode = channel_mode
        self.mask_background = mask_background
        self.percentiles = percentiles
        self.tile_size = tile_size
        self.tta = tta
        self.batch_size = batch_size
        self.providers = providers
        self.n_threads = n_threads
        self.graph_optimization = graph_optimization

    # ------------------------------------------------------------------ sklearn API
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Load and check the model, and fix the channels and feature names.

        Parameters
        ----------
        X : CellSet or list of images
            Cells, or whole images: (H, W) / (H, W, C) arrays or file paths.
            Only the channels are read from it.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
            The fitted transformer.
        """
        self._check_percentiles()
        channel_names = self._input_channels(X)
        path = _resolve_model(self.model)
        sha256 = _file_sha256(path)
        providers = _resolve_providers(self.providers)
        session = _get_session(path, sha256, providers, self.n_threads, self.graph_optimization)
        self.input_size_ = self._check_model_input(session, path)
        self.channels_ = _select_channels(self.channels, channel_names)
        if self.channel_mode == "rgb":
            self.channels_ = self.channels_[:3]
        self.channel_names_in_ = channel_names
        self.model_sha256_ = sha256
        self.model_name_ = _model_name(session, path)
        self.provider_ = session.get_providers()[0]
        self.providers_ = providers
        probe = np.zeros((1, 3, self.input_size_, self.input_size_), np.float32)
        self.n_dims_ = self._run(session, probe, path).shape[1]

        width = max(4, len(str(self.n_dims_ - 1)))
        base = [f"CNN_{self.model_name_}_{i:0{width}d}" for i in range(self.n_dims_)]
        if self.channel_mode == "rgb":
            names = base
        else:
            names = [f"{name}_{channel}" for channel in self.channels_ for name in base]
        self.feature_names_out_ = np.asarray(names, dtype=object)
        return self

    def transform(self, X):
        """Embed every cell, or every whole image.

        Parameters
        ----------
        X : CellSet or list of images
            Cells with the channels seen in ``fit``, or a list of (H, W) /
            (H, W, C) arrays or image file paths.

        Returns
        -------
        embeddings : ndarray of shape (n_samples, n_features), float32
            One row per cell or image, columns named by
            ``get_feature_names_out()``. An empty CellSet gives zero rows.
        """
        check_is_fitted(self, "feature_names_out_")
        if isinstance(X, CellSet):
            if X.channel_names != self.channel_names_in_:
                raise ValueError(
                    f"X has channels {list(X.channel_names)} but CNNEmbedding was fitted on "
                    f"{list(self.channel_names_in_)}"
                )
            inputs, n_rows = self._cell_inputs(X), len(X)
            return indexed_output(self, self._embed(inputs, n_rows), X)  # index by cell id
        else:
            images = self._check_images(X)
            inputs, n_rows = self._image_inputs(images), len(images)
        return self._embed(inputs, n_rows)

    def get_feature_names_out(self, input_features=None):
        """Output feature names: ``CNN_<model>_<i>[_<channel>]``.

        Parameters
        ----------
        input_features : Ignored
            Not used: the input is cells or images, not a table.

        Returns
        -------
        feature_names_out : ndarray of str objects
        """
        check_is_fitted(self, "feature_names_out_")
        return self.feature_names_out_.copy()

    @property
    def session_(self):
        """The shared onnxruntime session of the fitted model (built on first use)."""
        check_is_fitted(self, "model_sha256_")
        path = _resolve_model(self.model)
        sha256 = _file_sha256(path)
        if sha256 != self.model_sha256_:
            raise ValueError(
                f"model file {str(path)!r} has changed since fit (sha256 {sha256[:12]}..., "
                f"fitted {self.model_sha256_[:12]}...); fit again"
            )
        return _get_session(path, sha256, self.providers_, self.n_threads, self.graph_optimization)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.allow_nan = False
        return tags

    # ------------------------------------------------------------------ validation
    def _check_percentiles(self):
        p = self.percentiles
        if p is None:
            return
        if len(p) != 2 or not all(isinstance(v, Real) for v in p) or not 0 <= p[0] < p[1] <= 100:
            raise ValueError(
                f"percentiles must be two numbers 0 <= low < high <= 100, e.g. (1.0, 99.8), "
                f"or None; got {p!r}"
            )

    def _input_channels(self, X):
        """Channel names of cells, or Ch1..ChC of the first image."""
        if isinstance(X, CellSet):
            if len(X) == 0:
                raise ValueError("X is an empty CellSet; fit needs at least one cell")
            return X.channel_names
        first = self._load_image(self._check_images(X)[0], 0)
        return tuple(f"Ch{i + 1}" for i in range(first.shape[0]))


    def _check_model_input(self, session, path):
        """Validate the model's single NCHW input and return the input size to use."""
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise ValueError(
                f"model {str(path)!r} has {len(inputs)} inputs "
                f"{[i.name for i in inputs]}; expected one image input (N, 3, H, W)"
            )
        (spec,) = inputs
        shape = spec.shape
        if len(shape) != 4:
            raise ValueError(
                f"model {str(path)!r} input {spec.name!r} has shape {shape} (rank "
                f"{len(shape)}); expected rank 4: (batch, 3, height, width)"
            )
        if spec.type != "tensor(float)":
            raise ValueError(
                f"model {str(path)!r} input {spec.name!r} has type {spec.type}; "
                "expected tensor(float) (float32)"
            )
        if isinstance(shape[1], int) and shape[1] != 3:
            raise ValueError(
                f"model {str(path)!r} input {spec.name!r} has {shape[1]} channels "
                f"(shape {shape}); expected 3 (RGB)"
            )
        fixed = [s for s in shape[2:] if isinstance(s, int)]
        if len(fixed) == 2 and fixed[0] != fixed[1]:
            raise ValueError(
                f"model {str(path)!r} has a non-square fixed input {shape}; "
                "export it with square or dynamic height/width"
            )
        if self.input_size is None:
            size = fixed[0] if fixed else DEFAULT_INPUT_SIZE
        else:
            size = self.input_size
            if fixed and fixed[0] != size:
                raise ValueError(
                    f"input_size={size} but model {str(path)!r} has a fixed input of "
                    f"{shape}; use input_size={fixed[0]} or None"
                )
        if size < MIN_INPUT_SIZE:
            raise ValueError(
                f"model {str(path)!r} has input size {size}; CNNEmbedding needs at least "
                f"{MIN_INPUT_SIZE} pixels"
            )
        return size

    def _check_images(self, X):
        """Return X as a list of images (arrays or paths), or raise a helpful error."""
        if isinstance(X, (str, bytes)) or hasattr(X, "__fspath__"):
            raise TypeError(
                f"X must be a CellSet or a list of images/paths, got the single path {X!r}; "
                "wrap it in a list"
            )
        if isinstance(X, np.ndarray):
            raise TypeError(
                f"X must be a CellSet or a list of images/paths, got an ndarray of shape "
                f"{X.shape}; pass [image] for one image, list(stack) for a stack of images, "
                "or CellSet.from_crops(crops) for single-cell crops"
            )
        if not isinstance(X, (list, tuple)):
            raise TypeError(
                f"X must be a CellSet or a list of images/paths, got {type(X).__name__}"
            )
        if len(X) == 0:
            raise ValueError("X is an empty list of images")
        return X

    # ------------------------------------------------------------------ preprocessing
    def _load_image(self, item, index):
        """(C, H, W) float32 of an image array or file."""
        if isinstance(item, (str, bytes)) or hasattr(item, "__fspath__"):
            image, what = read_image(item), f"image file {os.fspath(item)!r}"
        else:
            image, what = np.asarray(item), f"image {index}"
        if image.ndim not in (2, 3) or not (
            np.issubdtype(image.dtype, np.number) and image.dtype != bool
        ) or 0 in image.shape:
            raise ValueError(
                f"{what} has shape {image.shape} and dtype {image.dtype}; expected a "
                "numeric (H, W) or (H, W, C) image with pixels"
            )
        image = image.astype(np.float32, copy=False)
        _check_finite(image, what)
        return image[np.newaxis] if image.ndim == 2 else np.moveaxis(image, -1, 0)

    def _cell_inputs(self, cells):
        """Yield (cell indices, (B, K, S, S) network-ready intensities in [0, 1]) per batch.

        On an accelerator the crops are prepared in one thread per core (the compiled
        preparation releases the GIL), so that the CPU keeps up with the network; on the
        CPU provider onnxruntime already uses every core.
        """
        accelerator = getattr(self, "provider_", "CPUExecutionProvider") != "CPUExecutionProvider"
        return _cell_batches(
            cells,
            self.channels_,
            self.input_size_,
            percentiles=self.percentiles,
            mask_background=self.mask_background,
            n_threads=(os.cpu_count() or 1) if accelerator else None,
        )

    def _image_inputs(self, images):
        """Yield (image index repeated, (T, K, S, S) tiles in [0, 1]) for every image."""
        tile = self.tile_size or self.input_size_
        n_in = len(self.channel_names_in_)
        index = [self.channel_names_in_.index(c) for c in self.channels_]
        for m, item in enumerate(images):
            image = self._load_image(item, m)
            if image.shape[0] != n_in:
                raise ValueError(
                    f"image {m} has {image.shape[0]} channel(s) but CNNEmbedding was fitted "
                    f"on images with {n_in}"
                )
            image = image[index]
            low, scale = _intensity_range(image, self.percentiles)
            parts = _tiles(image, tile)
            n = len(parts)
            for first in range(0, n, self.batch_size):
                chunk = parts[first : first + self.batch_size]
                yield (
                    np.full(len(chunk), m),
                    _fit_batch(
                        chunk,
                        np.tile(low, (len(chunk), 1)),
                        np.tile(scale, (len(chunk), 1)),
                        self.input_size_,
                    ),
                )

    # ------------------------------------------------------------------ inference
    def _embed(self, inputs, n_rows):
        """Run the network on every input in batches; average the views and tiles of each row."""
        if n_rows == 0:
            return np.empty((0, len(self.feature_names_out_)), dtype=np.float32)
        n_slots = 1 if self.channel_mode == "rgb" else len(self.channels_)
        sums = np.zeros((n_rows * n_slots, self.n_dims_), dtype=np.float64)
        counts = np.zeros(n_rows * n_slots, dtype=np.int64)
        session, path = self.session_, _resolve_model(self.model)
        size = self.input_size_
        # On an accelerator the CPU idles while a batch runs (session.run releases
        # the GIL): prepare the next batch meanwhile, in a second buffer. On the CPU
        # provider onnxruntime already uses every core, so there is nothing to overlap.
        # An accelerator also always gets full batches (a short last batch is padded):
        # onnxruntime's CUDA convolutions redo their set-up whenever the input shape
        # changes, which made alternating batch shapes 20-60x slower on an H200.
        accelerator = self.provider_ != "CPUExecutionProvider"
        shape = (self.batch_size, 3, size, size)
        buffers = [np.zeros(shape, np.float32) for _ in range(1 + accelerator)]

        def add(features, key):
            if (key[1:] > key[:-1]).all():  # distinct keys: one cell, channel per input
                sums[key] += features
                counts[key] += 1
            else:  # views of one cell in this batch: sum equal keys first (add.at is slow)
                order = np.argsort(key, kind="stable")
                key = key[order]
                first = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
                sums[key[first]] += np.add.reduceat(features[order], first, axis=0)
                counts[key[first]] += np.diff(np.append(first, len(key)))

        def collect(future, key):  # the padding rows of a short last batch are dropped
            add(future.result()[: len(key)], key)

        running = None  # (future, key) of the batch on the accelerator
        with ThreadPoolExecutor(1) if accelerator else nullcontext() as pool:
            batches = _batches(self._network_inputs(inputs), self.batch_size)
            for b, pieces in enumerate(batches):
                batch, n = buffers[b % len(buffers)], 0
                for _, _, planes in pieces:  # ImageNet-normalised into the batch; grey to RGB
                    part = batch[n : n + len(planes)]
                    np.multiply(planes[:, None] if planes.ndim == 3 else planes, _SCALE, out=part)
                    part += _OFFSET
                    n += len(planes)
                rows = np.concatenate([piece[0] for piece in pieces])
                key = rows * n_slots + np.concatenate([piece[1] for piece in pieces])
                if pool is None:
                    add(self._run(session, batch[:n], path), key)
                    continue
                if running is not None:  # its buffer is refilled next time round
                    collect(*running)
                running = (pool.submit(self._run, session, batch, path), key)
            if running is not None:
                collect(*running)
        return (sums / counts[:, None]).reshape(n_rows, -1).astype(np.float32)

    def _network_inputs(self, inputs):
        """Yield (rows, slots, planes) arrays: (n, S, S) grey or (n, 3, S, S) RGB planes."""
        rgb = self.channel_mode == "rgb"
        for rows, images in inputs:
            n, k = images.shape[:2]
            if rgb:
                if k < 3:  # channels_ holds at most 3 channels; missing ones stay black
                    black = np.zeros((n, 3 - k, *images.shape[2:]), np.float32)
                    images = np.concatenate([images, black], axis=1)
                slots, planes = np.zeros(n, np.intp), images
            else:
                rows = np.repeat(rows, k)
                slots = np.tile(np.arange(k), n)
                planes = images.reshape(n * k, *images.shape[2:])
            for view in _dihedral_views(planes) if self.tta else (planes,):
                yield rows, slots, view

    @staticmethod
    def _run(session, x, path):
        """Run the network on (N, 3, S, S); return (N, D) features."""
        spec = session.get_inputs()[0]
        out = session.run(None, {spec.name: x})[0]
        if out.ndim == 4:
            out = out.mean(axis=(2, 3))
        if out.ndim != 2 or out.shape[0] != x.shape[0]:
            raise ValueError(
                f"model {str(path)!r} output has shape {out.shape} for an input of "
                f"{x.shape}; expected (N, D) features or an (N, D, h, w) feature map"
            )
        return out


def make_cnn_pipeline(head="lr", **cnn_params):
    """CNN embedding, standard scaling and a classifier head in one Pipeline.

    Parameters
    ----------
    head : {"lr", "svm", "mlp"} or any name known to :func:`featcell.heads.make_head`, default="lr"
        The classifier: class-balanced logistic regression, RBF SVM, or a
        one-hidden-layer perceptron.
    **cnn_params
        Parameters of :class:`CNNEmbedding` (``input_size``, ``channels``, ...).

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline
        Steps ``"cnn"``, ``"scale"`` and ``"head"``; unfitted.

    Examples
    --------
    >>> from featcell.cnn import make_cnn_pipeline
    >>> pipe = make_cnn_pipeline("svm", input_size=96, channels=["DNA"])
    >>> [name for name, _ in pipe.steps]
    ['cnn', 'scale', 'head']
    """
    return Pipeline(
        [
            ("cnn", CNNEmbedding(**cnn_params)),
            ("scale", StandardScaler()),
            ("head", make_head(head)),
        ]
    )
