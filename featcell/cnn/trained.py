"""A CNN trained on your cells: PyTorch to train, ONNX (onnxruntime) to run.

:class:`CNNClassifier` trains a small ResNet from scratch on the crops of a
:class:`~featcell.CellSet`, with augmentation, class balancing and early stopping
on a validation split that keeps groups (images) apart, then exports the network
to ONNX. Prediction and the penultimate-layer embedding (``transform``) run
through onnxruntime, so a fitted model scores on machines without torch.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, _fit_context
from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d

from ..cells import CellSet
from ..features._base import indexed_output
from ._preprocess import MIN_INPUT_SIZE, _cell_batches, _pooled_percentiles, _select_channels
from ._sessions import _network_session

__all__ = ["CNNClassifier"]

_DATASET_PERCENTILES = (0.1, 99.9)
_CROP_PERCENTILES = (1.0, 99.8)
_MAX_AUTO_SIZE = 96


def _check_cells(X, who):
    if not isinstance(X, CellSet):
        raise TypeError(f"{who} needs a featcell.CellSet of cells, got {type(X).__name__}")


def _check_training_cells(X, y, who):
    """``y`` as a 1-D array of class labels, one per cell of the CellSet ``X``."""
    _check_cells(X, who)
    y = column_or_1d(y, warn=True)
    if len(y) != len(X):
        raise ValueError(f"y has {len(y)} labels but X has {len(X)} cells")
    check_classification_targets(y)
    return y


def _auto_input_size(cells):
    """Network side for these crops: their median longest side, rounded up to a multiple
    of 8, between 32 and 96 (small crops are used at their own resolution)."""
    side = float(np.median(cells.crop_shapes.max(axis=1))) if len(cells) else MIN_INPUT_SIZE
    return int(np.clip(8 * np.ceil(side / 8), MIN_INPUT_SIZE, _MAX_AUTO_SIZE))


def _dataset_range(cells, channels, percentiles):
    """Per-channel black point and gain from the pixels of all (training) crops."""
    index = [cells.channel_names.index(c) for c in channels]
    low, high = _pooled_percentiles([cells.flat().values[index]], percentiles).T
    span = high - low
    gain = np.divide(1.0, span, out=np.zeros_like(span), where=span > 0)
    return low.astype(np.float32), gain.astype(np.float32)


def _prepare(cells, channels, size, normalization, ranges, mask_background, n_threads):
    """(N, K, size, size) float32 inputs in [0, 1], in the order of the cells."""
    out = np.empty((len(cells), len(channels), size, size), np.float32)
    batches = _cell_batches(
        cells, channels, size, percentiles=_CROP_PERCENTILES,
        mask_background=mask_background, n_threads=n_threads,
        ranges=ranges if normalization == "dataset" else None,
    )
    for rows, block in batches:
        out[rows] = block
    return out


class CNNClassifier(TransformerMixin, ClassifierMixin, BaseEstimator):
    """Train a small CNN on the cells' crops; predict and embed with onnxruntime.

    The network is a ResNet (a 3x3 stem and three stages of one basic block,
    about 0.3 M parameters at ``width=32``) trained from scratch on the crops of a
    :class:`~featcell.CellSet`, resized to fit ``input_size`` (small crops keep
    their resolution). Training uses PyTorch (``pip install 'featcell[train]'``),
    on CUDA when present; the fitted network is exported to ONNX and kept, with
    its SHA-256, in ``network_``: ``predict``, ``predict_proba`` and ``transform``
    need only onnxruntime.

    Training: AdamW on a class-weighted cross-entropy (``class_weight``), random
    flips, 90-degree rotations, shifts and intensity jitter; a validation split
    of the training cells that keeps every group (``groups``, images by default)
    on one side, stratified by class. An exponential moving average of the
    weights (over about one epoch of steps) is what is validated and kept, so
    the validation curve follows the trend rather than the last step's noise.
    The learning rate follows cosine cycles with warm restarts (10, 20, 40
    epochs..., the last taking the epochs left of ``max_epochs``: 10, 20, 40
    and 50 by default); training stops at the end of the
    first cycle that did not lower the validation loss (the unweighted
    cross-entropy, so that a few cells of a rare class cannot decide the
    epoch), and the best epoch's weights are kept: the number of epochs is
    chosen by validation, not fixed. Predictions and the embedding average the
    8 flips and 90-degree rotations of each crop (in the exported graph, and in
    the validation that picks the epoch).

    Parameters
    ----------
    architecture : {"resnet", "efficientnet_lite0"}, default="resnet"
        ``"resnet"``: the small ResNet, trained from scratch. ``"efficientnet_lite0"``:
        fine-tune the bundled ImageNet EfficientNet-Lite0 (3.4 M parameters, a 1280-d
        embedding; ``width`` is unused) with a new head, the trunk learning at a tenth of
        ``learning_rate`` and decaying towards its pretrained weights; ``input_size``
        defaults to the ResNet's, rounded up to a multiple of 32, at least 64. An epoch
        costs about 6 times the ResNet's on the CPU (Jurkat 40 px crops: 55 s against 9 s
        on one thread), where it reached 0.565 balanced accuracy against the ResNet's
        0.488 (label-free, 533 training cells, one split). Pick it when labelled cells are
        few (hundreds) or the ResNet's validation accuracy stays low, and on a GPU.
    channels : str or list of str, default=None
        Channels to use, by name; ``None`` uses all.
    input_size : int, default=None
        Side of the square network input (at least 32). ``None``: the median
        longest crop side rounded up to a multiple of 8, between 32 and 96.
    width : int, default=32
        Channels of the first stage (then doubled twice); the embedding has
        ``4 * width`` features (the ResNet; EfficientNet-Lite0's has 1280).
    normalization : {"dataset", "crop"}, default="dataset"
        ``"dataset"`` maps each channel's 0.1 and 99.9 percentiles over all training
        pixels to 0 and 1, keeping differences of brightness between cells (often
        informative); ``"crop"`` maps each crop's own 1 and 99.8 percentiles.
    mask_background : bool, default=False
        Black out pixels outside each cell's mask.
    max_epochs : int, default=120
        Upper bound on the epochs; early stopping often ends sooner. (On
        label-free Jurkat cells, 1,600 training cells, the best epoch was in the
        last cycle in all 5 folds with 60, and 4 to 28 epochs before the end
        with 120, whose fourth cycle lowered the validation loss by 0.01 to 0.13:
        60 stopped the networks early. With 310, the fifth cycle lowered it again in
        every fold, by 0.12 to 0.19, the best epochs were 269 to 296, and the
        balanced accuracy rose from 0.590 to 0.617, for 2.6 times the epochs:
        raise ``max_epochs`` when training is cheap, on a GPU.)
    patience : int, default=8
        Epochs without a lower validation loss before training stops
        (``schedule="plateau"`` only).
    schedule : {"cosine", "plateau"}, default="cosine"
        ``"cosine"``: cosine annealing with warm restarts, stopping after a cycle
        without improvement; ``"plateau"``: a constant learning rate divided by 5
        after ``patience // 2`` epochs without improvement, stopping after
        ``patience``.
    tta : bool, default=True
        Test-time augmentation: average the embedding (and so the logits) over
        the 8 dihedral views of each crop, so that predictions do not depend on
        the cell's orientation. Costs 8 network passes per cell in prediction.
    refit : bool, default=False
        After the epochs are chosen on the validation cells, train a new network
        on all the cells (validation ones included), with the same seed and
        schedule, for ``best_epoch_`` epochs, and keep that one. Costs about twice
        the training; the network learns from every cell. Needs
        ``schedule="cosine"`` (the plateau schedule's steps follow the validation).
    batch_size : int, default=64
    learning_rate : float, default=3e-3
    weight_decay : float, default=1e-4
    augment : bool, default=True
        Random flips, 90-degree rotations, shifts (up to 10 % of the side) and
        intensity jitter during training.
    validation_fraction : float, default=0.15
        Share of the training groups held out for early stopping (stratified by
        class; with few groups, groups are held out in a seeded order as long as
        every class keeps training cells).
    groups : str or None, default="image"
        Metadata column whose groups the validation split keeps apart (cells of one
        image are not independent); ``None`` splits cells.
    class_weight : {"balanced", None}, default="balanced"
        Weight the loss inversely to class frequency.
    device : {"auto", "cpu", "cuda"}, default="auto"
        Where to train; ``"auto"`` uses CUDA when torch sees it.
    providers : "auto" or list of str, default="auto"
        onnxruntime execution providers for prediction.
    n_threads : int, default=None
        Threads for torch while training, for onnxruntime and for preparing crops;
        ``None`` keeps the libraries' defaults.
    random_state : int, default=0
        Seeds the validation split, initialisation, batch order and augmentation;
        on the CPU a fit is reproducible.
    verbose : bool, default=False
        Show a progress bar with the losses and seconds per epoch.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    channels_ : tuple of str
        Channels used.
    channel_names_in_ : tuple of str
        Channels of the cells seen in ``fit``.
    input_size_ : int
    intensity_range_ : (n_channels, 2) ndarray
        Black point and gain per channel (``normalization="dataset"``).
    network_ : bytes
        The trained network as ONNX: input ``(N, K, S, S)`` in [0, 1]; outputs
        ``proba`` and ``embedding``.
    network_sha256_ : str
        SHA-256 of ``network_``, checked before every use.
    n_parameters_ : int
    history_ : list of dict
        Per epoch: training and validation loss, seconds, and the validation
        class-balanced cross-entropy and balanced accuracy.
    best_epoch_ : int
        Epoch whose weights were kept.
    validation_index_ : ndarray of int
        Positions, among the cells given to ``fit``, of the validation cells held out
        for early stopping.
    validation_proba_ : ndarray of shape (n_validation, n_classes)
        The validated network's probabilities of those cells (which it did not
        train on; with ``refit``, the kept network did).
    refit_history_ : list of dict
        With ``refit``: the refit's epochs (training loss, seconds).
    fit_seconds_ : float
        Wall time of ``fit`` (preparation, training and export).
    device_ : str
        Hardware used for training, in words (e.g. ``"cpu (2 threads)"``).
    feature_names_out_ : ndarray of str
        ``CNN_Trained_<i>``: the embedding's features.

    Examples
    --------
    >>> import numpy as np
    >>> from featcell import CellSet
    >>> from featcell.cnn import CNNClassifier
    >>> rng = np.random.default_rng(0)
    >>> crops = rng.normal(0.2, 0.05, (40, 1, 16, 16)).astype(np.float32)
    >>> crops[:20, :, 4:12, 4:12] += 0.6                     # bright cells
    >>> y = np.repeat(["bright", "dim"], 20)
    >>> cells = CellSet.from_crops(crops)
    >>> clf = CNNClassifier(width=8, max_epochs=3).fit(cells, y)  # doctest: +SKIP
    >>> clf.predict_proba(cells).shape, clf.transform(cells).shape  # doctest: +SKIP
    ((40, 2), (40, 32))
    """

    _parameter_constraints: ClassVar[dict] = {
        "architecture": [StrOptions({"resnet", "efficientnet_lite0"})],
        "channels": [str, list, tuple, None],
        "input_size": [Interval(Integral, MIN_INPUT_SIZE, None, closed="left"), None],
        "width": [Interval(Integral, 4, None, closed="left")],
        "normalization": [StrOptions({"dataset", "crop"})],
        "mask_background": ["boolean"],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "patience": [Interval(Integral, 1, None, closed="left")],
        "schedule": [StrOptions({"cosine", "plateau"})],
        "tta": ["boolean"],
        "refit": ["boolean"],
        "batch_size": [Interval(Integral, 2, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "augment": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 0.5, closed="neither")],
        "groups": [str, None],
        "class_weight": [StrOptions({"balanced"}), None],
        "device": [StrOptions({"auto", "cpu", "cuda"})],
        "providers": [StrOptions({"auto"}), list, tuple],
        "n_threads": [Interval(Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        architecture="resnet",
        *,
        channels=None,
        input_size=None,
        width=32,
        normalization="dataset",
        mask_background=False,
        max_epochs=120,
        patience=8,
        schedule="cosine",
        tta=True,
        refit=False,
        batch_size=64,
        learning_rate=3e-3,
        weight_decay=1e-4,
        augment=True,
        validation_fraction=0.15,
        groups="image",
        class_weight="balanced",
        device="auto",
        providers="auto",
        n_threads=None,
        random_state=0,
        verbose=False,
    ):
        self.architecture = architecture
        self.channels = channels
        self.input_size = input_size
        self.width = width
        self.normalization = normalization
        self.mask_background = mask_background
        self.max_epochs = max_epochs
        self.patience = patience
        self.schedule = schedule
        self.tta = tta
        self.refit = refit
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.augment = augment
        self.validation_fraction = validation_fraction
        self.groups = groups
        self.class_weight = class_weight
        self.device = device
        self.providers = providers
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train the network on the cells and export it to ONNX.

        Parameters
        ----------
        X : CellSet
            The training cells.
        y : (n_cells,) array-like
            Class of every cell.

        Returns
        -------
        self : object
            The fitted classifier.
        """
        from ._training import require_torch

        torch = require_torch(type(self).__name__)
        if self.refit and self.schedule != "cosine":
            raise ValueError("refit=True needs schedule='cosine': the plateau schedule's "
                             "learning rate follows the validation loss, which a refit lacks")
        start = time.perf_counter()
        for name in ("intensity_range_", "refit_history_"):  # set by some fits only
            self.__dict__.pop(name, None)
        y = _check_training_cells(X, y, "CNNClassifier.fit")
        self.classes_, y_index = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"y has a single class {self.classes_[0]!r}; need at least two")
        self.channel_names_in_ = X.channel_names
        self.channels_ = _select_channels(self.channels, X.channel_names)
        self.input_size_ = self.input_size or _auto_input_size(X)
        if self.architecture == "efficientnet_lite0" and self.input_size is None:
            self.input_size_ = max(64, 32 * -(-self.input_size_ // 32))  # the net's strides
        if self.normalization == "dataset":
            self.intensity_range_ = np.stack(_dataset_range(X, self.channels_, _DATASET_PERCENTILES), 1)
        inputs = self._inputs(X)
        from . import _training

        seed = _training.fit_seed(self.random_state)
        train, val = self._validation_split(X, y_index, seed)
        self.validation_index_ = np.asarray(val, dtype=np.intp)

        threads = torch.get_num_threads()
        if self.n_threads is not None:
            torch.set_num_threads(self.n_threads)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                generator = torch.Generator().manual_seed(seed)
                device = _training.resolve_device(self.device)
                self.device_ = _training.device_name(device)
                def class_weights(rows):
                    if self.class_weight != "balanced":
                        return None
                    present = np.unique(y_index[rows])
                    w = np.ones(len(self.classes_), np.float32)
                    w[present] = compute_class_weight("balanced", classes=present, y=y_index[rows])
                    return torch.as_tensor(w, device=device)

                weight = class_weights(train)
                x_t, y_t = torch.from_numpy(inputs), torch.from_numpy(y_index.astype(np.int64))
                sets = {True: train, False: val}

                def make_batch(items, training):
                    rows = sets[training][items]
                    xb = x_t[rows]
                    if training and self.augment:
                        xb = _training.augment_batch(xb, generator)
                    return xb.to(device), y_t[rows].to(device)

                def loss_fn(model, batch):  # no label smoothing: with class weights,
                    xb, yb = batch  # torch weights its uniform part too, biasing to rare classes
                    return torch.nn.functional.cross_entropy(model(xb), yb, weight=weight)

                views = 8 if self.tta else 1

                def validation_logits(model):
                    return torch.cat([
                        model.fc(_training.embed_views(
                            model, x_t[val[first : first + 256]].to(device), views
                        )).float().cpu()
                        for first in range(0, len(val), 256)
                    ]).numpy()

                def validate(model):
                    return _validation_scores(validation_logits(model), y_index[val])

                def make_net(rows):
                    x = inputs[rows]
                    mean, std = x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3)) + 1e-3
                    if self.architecture == "efficientnet_lite0":  # pretrained trunk, new head
                        from ._efficientnet import efficientnet_lite0

                        return efficientnet_lite0(len(self.channels_), len(self.classes_))
                    return _training.small_resnet(
                        len(self.channels_), len(self.classes_), self.width, mean, std
                    )

                net = make_net(train)
                settings = dict(
                    make_batch=make_batch, average_weights=True, schedule=self.schedule,
                    batch_size=self.batch_size, learning_rate=self.learning_rate,
                    weight_decay=self.weight_decay, patience=self.patience, device=device,
                    generator=generator, verbose=self.verbose, name="CNNClassifier",
                )
                self.history_, self.best_epoch_ = _training.fit_network(
                    net, loss_fn, len(train), len(val), validate=validate,
                    max_epochs=self.max_epochs, **settings,
                )
                with torch.no_grad():
                    logits = validation_logits(net.eval())
                self.validation_proba_ = _softmax(logits)
                if self.refit:  # the same seed, schedule and epochs, on all the cells
                    torch.manual_seed(seed)
                    generator.manual_seed(seed)
                    train = np.arange(len(y_index))
                    sets[True], weight = train, class_weights(train)
                    net = make_net(train)
                    self.refit_history_, _ = _training.fit_network(
                        net, loss_fn, len(train), 0, max_epochs=self.best_epoch_,
                        schedule_epochs=self.max_epochs, **settings
                    )
                self.n_parameters_ = int(sum(p.numel() for p in net.parameters()))
                size = self.input_size_
                self.network_ = _training.export_onnx(
                    _training.proba_and_embedding(net, views),
                    torch.zeros(1, len(self.channels_), size, size),
                    ["input"], ["proba", "embedding"],
                    {"input": {0: "batch"}, "proba": {0: "batch"}, "embedding": {0: "batch"}},
                )
        finally:
            torch.set_num_threads(threads)
        self.network_sha256_ = hashlib.sha256(self.network_).hexdigest()
        n_dims = net.fc.in_features  # 4 * width (ResNet), 1280 (EfficientNet-Lite0)
        self.feature_names_out_ = np.asarray(
            [f"CNN_Trained_{i:04d}" for i in range(n_dims)], dtype=object
        )
        self.fit_seconds_ = time.perf_counter() - start
        return self

    # ------------------------------------------------------------------ predict
    def predict_proba(self, X):
        """Class probabilities of every cell.

        Parameters
        ----------
        X : CellSet
            Cells with the channels seen in ``fit``.

        Returns
        -------
        proba : ndarray of shape (n_cells, n_classes)
            Columns in the order of ``classes_``.
        """
        return self._run(X)[0]

    def predict(self, X):
        """The most probable class of every cell.

        Parameters
        ----------
        X : CellSet

        Returns
        -------
        labels : ndarray of shape (n_cells,)
        """
        proba = self.predict_proba(X)  # checks the fit before classes_ is read
        return self.classes_[np.argmax(proba, axis=1)]

    def transform(self, X):
        """The network's penultimate layer (global-average-pooled features) per cell.

        Parameters
        ----------
        X : CellSet

        Returns
        -------
        embedding : ndarray of shape (n_cells, n_features), float32
            A DataFrame indexed by the cell ids under ``set_output(transform="pandas")``.
        """
        return indexed_output(self, self._run(X)[1], X)

    def fit_transform(self, X, y=None, **fit_params):
        """Fit, then embed the training cells (``y`` is required).

        Parameters
        ----------
        X : CellSet
        y : (n_cells,) array-like

        Returns
        -------
        embedding : ndarray of shape (n_cells, n_features), float32
        """
        if y is None:
            raise ValueError("CNNClassifier is trained on labels: fit_transform needs y")
        return self.fit(X, y, **fit_params).transform(X)

    def get_feature_names_out(self, input_features=None):
        """Embedding feature names ``CNN_Trained_<i>``.

        Parameters
        ----------
        input_features : Ignored

        Returns
        -------
        feature_names_out : ndarray of str objects
        """
        check_is_fitted(self, "feature_names_out_")
        return self.feature_names_out_.copy()

    @property
    def session_(self):
        """The onnxruntime session of ``network_`` (hash checked; built on first use)."""
        check_is_fitted(self, "network_sha256_")
        return _network_session(
            self.network_, self.network_sha256_, self.providers, self.n_threads, "CNNClassifier"
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.non_deterministic = False
        return tags

    # ------------------------------------------------------------------ helpers
    def _inputs(self, X):
        ranges = None
        if self.normalization == "dataset":
            ranges = (self.intensity_range_[:, 0], self.intensity_range_[:, 1])
        return _prepare(
            X, self.channels_, self.input_size_, self.normalization, ranges,
            self.mask_background, self.n_threads,
        )

    def _validation_split(self, X, y_index, seed):
        """(train, validation) cell indices; groups never straddle the two."""
        n = len(y_index)
        groups = np.arange(n) if self.groups is None else X.groups(self.groups)
        n_groups = len(np.unique(groups))
        if n_groups < 2:
            raise ValueError(
                f"CNNClassifier needs at least 2 groups ({self.groups!r}) to hold some out "
                f"for early stopping; the cells have {n_groups}. Pass groups=None if the "
                "cells are independent"
            )
        n_splits = max(2, int(round(1 / self.validation_fraction)))
        n_classes = int(y_index.max()) + 1  # (classes 0..K-1, from np.unique)
        if n_groups >= n_splits and np.bincount(y_index).min() >= 1:
            cv = StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed)
            try:
                train, val = next(cv.split(np.zeros(n), y_index, groups))
                if len(val) and len(np.unique(y_index[train])) == n_classes:
                    return train, val
            except ValueError:
                pass
        # few groups: groups in a seeded order, each held out unless that takes the last
        # training cells of a class, until the validation fraction is reached
        left = np.bincount(y_index, minlength=n_classes)
        held, size = [], 0
        unique = np.unique(groups)
        for g in unique[np.random.default_rng(seed).permutation(len(unique))]:
            if size >= self.validation_fraction * n and held:
                break
            rows = groups == g
            counts = np.bincount(y_index[rows], minlength=n_classes)
            if np.any((left == counts) & (counts > 0)) or rows.sum() == n:
                continue
            held.append(g)
            left -= counts
            size += int(rows.sum())
        if not held:  # every group holds the last cells of a class
            warnings.warn(
                f"CNNClassifier: no group ({self.groups!r}) can be held out for early stopping "
                "without taking every training cell of a class; the network will not learn "
                "some classes. Give more images per class, or groups=None for independent "
                "cells", UserWarning, stacklevel=3)
            splitter = GroupShuffleSplit(1, test_size=self.validation_fraction,
                                         random_state=seed)
            return next(splitter.split(np.zeros(n), y_index, groups))
        val = np.flatnonzero(np.isin(groups, held))
        return np.setdiff1d(np.arange(n), val), val

    def _run(self, X):
        check_is_fitted(self, "network_sha256_")
        _check_cells(X, "CNNClassifier")
        if X.channel_names != self.channel_names_in_:
            raise ValueError(
                f"X has channels {list(X.channel_names)} but CNNClassifier was fitted on "
                f"{list(self.channel_names_in_)}"
            )
        session = self.session_
        n_dims = len(self.feature_names_out_)
        proba = np.empty((len(X), len(self.classes_)), np.float32)
        embedding = np.empty((len(X), n_dims), np.float32)
        if len(X) == 0:
            return proba, embedding
        inputs = self._inputs(X)
        step = 256
        for first in range(0, len(X), step):
            p, z = session.run(None, {"input": inputs[first : first + step]})
            proba[first : first + step], embedding[first : first + step] = p, z
        return proba, embedding


def _softmax(logits):
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def _validation_scores(logits, y):
    """The early-stopping criterion on the validation cells (lower is better), and figures.

    The criterion is the mean cross-entropy over validation cells, unweighted: each cell
    counts once, so a handful of cells of a rare class cannot dominate the choice of epoch
    (class-weighted, one cell among 300 of a class with 2 validation cells weighs as much as
    50 cells of a common class, and one confident mistake on it outweighs everything else).
    The class-balanced cross-entropy and the balanced accuracy are returned as figures.
    """
    logits = logits - logits.max(axis=1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    nll = -log_p[np.arange(len(y)), y]
    figures = {
        "val_macro_cross_entropy": float(np.mean([nll[y == c].mean() for c in np.unique(y)])),
        "val_balanced_accuracy": _balanced_accuracy(y, logits.argmax(axis=1)),
    }
    return float(nll.mean()), figures


def _balanced_accuracy(y, predicted):
    """Mean recall over the classes present in ``y`` (class codes, as ``predicted``);
    unlike scikit-learn's, no warning for a predicted class that ``y`` lacks."""
    return float(np.mean([np.mean(predicted[y == c] == c) for c in np.unique(y)]))
