"""A fully-convolutional density network trained from dots: PyTorch to train, ONNX to run.

:class:`CNNDensityCounter` learns a per-pixel density from dot annotations (the
targets of :func:`featcell.points.density_target`) with a small U-Net-like
network (FCRN-A and Count-ception are of this family); an image's count is the
sum of its predicted density.
"""

from __future__ import annotations

import hashlib
import time
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..features.image import _check_images, _read
from ..points import _dot_spacing, _DotCountScore, _resolve_points, density_target
from ._preprocess import _pooled_percentiles
from ._sessions import _network_session

__all__ = ["CNNDensityCounter"]

_DATASET_PERCENTILES = (0.1, 99.9)
_DENSITY_SCALE = 100.0  # the loss sees density x 100: values of order 1 near a dot
# depth="auto": the receptive field spans at least this many dot spacings (two each side)
_CONTEXT_SPACINGS = 4


def _as_channels(image, channels, what):
    """(K, M, N) float32 of an (M, N[, C]) image, the chosen channels."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or not np.issubdtype(image.dtype, np.number):
        raise ValueError(f"{what} has shape {image.shape}; expected a numeric (M, N[, C]) image")
    if 0 in image.shape[:2]:
        raise ValueError(f"{what} has shape {image.shape}: no pixels")
    if channels is not None:
        if not all(isinstance(c, Integral) and not isinstance(c, bool) and
                   0 <= c < image.shape[-1] for c in channels) or not len(channels):
            raise ValueError(
                f"channels={list(channels)}; expected channel indices from 0 to "
                f"{image.shape[-1] - 1} ({what} has {image.shape[-1]} channel(s))"
            )
        image = image[..., list(channels)]
    out = np.moveaxis(image.astype(np.float32), -1, 0)
    if not np.isfinite(out).all():
        raise ValueError(f"{what} contains NaN or infinite pixels")
    return np.ascontiguousarray(out)


def _pad(image, multiple):
    """Pad (K, M, N) at the bottom and right (edge values) to multiples of ``multiple``."""
    ph, pw = (-image.shape[1]) % multiple, (-image.shape[2]) % multiple
    if ph or pw:
        image = np.pad(image, ((0, 0), (0, ph), (0, pw)), mode="edge")
    return image


def _receptive_field(depth):
    """Side, in pixels, of the input square one output pixel of the density network sees:
    two 3x3 convolutions per block, a 2x2 pooling before each deeper encoder, nearest
    upsampling before each decoder."""
    field, step = 1, 1
    for level in range(depth + 1):
        if level:  # pooling
            field, step = field + step, 2 * step
        field += 4 * step  # two 3x3 convolutions
    for _ in range(depth):
        step //= 2
        field += 4 * step
    return field


def _auto_depth(spacing):
    """``depth="auto"``: the fewest poolings, 2 to 4, whose receptive field spans
    ``_CONTEXT_SPACINGS`` times the dot ``spacing`` (2 without neighbouring dots: None)."""
    for depth in (2, 3):
        if spacing is None or _receptive_field(depth) >= _CONTEXT_SPACINGS * spacing:
            return depth
    return 4


def _sigma_candidates(spacing, factors):
    """The sigmas ``sigma="auto"`` tries: the dot spacing's sigma (a quarter of the
    ``spacing``: objects touch at about that distance) times each of ``factors``, each
    between 1 and 8 pixels (2 without neighbouring dots: None), in order, repeats dropped."""
    candidates = []
    for f in factors:
        sigma = 2.0 if spacing is None else round(float(np.clip(f * spacing / 4, 1.0, 8.0)), 4)
        if sigma not in candidates:
            candidates.append(sigma)
    return candidates


def _mean_graph(nets, views):
    """One torch module: the density averaged over the networks ``nets`` and over
    ``views`` (4: the flips; 8: the flips and 90-degree rotations) of the input, each
    view's output mapped back onto the image (exported to ONNX as one graph)."""
    import torch
    from torch import nn

    class MeanDensity(nn.Module):
        def __init__(self):
            super().__init__()
            self.nets = nn.ModuleList(nets)

        def forward(self, x):
            out = None
            for net in self.nets:
                for flip in ((), (-1,), (-2,), (-2, -1)):
                    v = x.flip(flip) if flip else x
                    d = net(v)
                    d = d.flip(flip) if flip else d
                    out = d if out is None else out + d
                    if views == 8:  # the transposed view (with the flip, a rotation)
                        d = net(v.transpose(-2, -1)).transpose(-2, -1)
                        out = out + (d.flip(flip) if flip else d)
                    if views == 1:
                        break
            return out / torch.tensor(float(len(self.nets) * views))

    return MeanDensity()


class CNNDensityCounter(_DotCountScore, RegressorMixin, BaseEstimator):
    """Count objects as the sum of a density map predicted by a small trained FCN.

    A U-Net-like fully-convolutional network (``depth`` poolings, skip connections,
    about 0.35 M parameters at ``width=16`` and ``depth=2``) is trained with PyTorch
    (``pip install 'featcell[train]'``, CUDA when present) to map each image to
    the Gaussian-smoothed map of its dots (:func:`featcell.points.density_target`),
    on random square patches with random flips and 90-degree rotations; the loss
    sees the density times 100 (values of order 1 near a dot), and the output
    layer starts at the mean density. AdamW, a one-epoch warm-up and a cosine
    decay of the learning rate over ``max_epochs``; after every epoch the moving
    average of the weights is validated on held-out training images (whole
    images, their count error) and training stops when that error has not
    improved for ``patience`` epochs; the best epoch is kept. By default three
    such networks are trained by cross-fitting (``n_members``): each holds out
    a third of the images and trains on the rest, so every image trains two
    members and validates one, and the density is their mean (averaging
    reduces the variance that dominates small training sets). With
    ``calibrate``, the counts are rescaled by the ratio of true to predicted
    counts of the held-out images (each counted by a member that never trained
    on it: with the default, all training images). Sigma is chosen the same
    way: the ensemble is trained for each candidate sigma (by default the dot
    spacing's and half of it), on the same folds and patches, and the one with
    the lowest held-out count error is kept. The networks, averaged over
    the eight flips and rotations of the input (``test_time_flips``), are
    exported to ONNX as one graph (``network_`` with ``network_sha256_``);
    ``predict`` and ``predict_density`` need only onnxruntime.

    Parameters
    ----------
    sigma : float or "auto", default="auto"
        Standard deviation of the Gaussian around each dot, in pixels. ``"auto"``
        chooses it by validation on the training images: each of ``sigma_factors``
        times the dot spacing's sigma (a quarter of the median distance between
        neighbouring dots, objects touch at about that distance), between 1 and 8,
        trains the whole ensemble, and the sigma with the lowest held-out count
        error (``validation_mae_``) is kept.
    sigma_factors : sequence of float, default=(0.5, 1.0)
        Multiples of the dot spacing's sigma that ``sigma="auto"`` tries. Each
        costs one ensemble's training (``(1.0,)``: the spacing's sigma alone, one
        ensemble).
    channels : sequence of int, default=None
        Image channels the network sees; ``None`` uses all.
    width : int, default=16
        Channels of the first level (doubled at each pooling).
    depth : int or "auto", default="auto"
        Poolings (1 to 5): each halves the resolution and doubles the channels, and
        about doubles how far a pixel's density sees (the receptive field: 44 pixels
        across at 2, 96 at 3, 200 at 4). ``"auto"``: the fewest poolings, 2 to 4, whose
        receptive field spans four dot spacings (median distances between neighbouring
        dots), so that a pixel in a crowd sees its neighbours' neighbours at any
        magnification: 2 for VGG cells (spacing about 8 px), 3 for DSB2018 nuclei
        (about 23 px; there, against 2: the same mean error over 5 draws, a third of
        the spread, 1.2 times the fit time and four times the parameters, 1.46 M for
        three networks; ``examples/count_dsb2018_dots.py``). Image sides are padded to
        a multiple of ``2**depth``.
    patch_size : int, default=64
        Side of the random training patches (a multiple of ``2**depth``; whole images
        when smaller).
    patches_per_epoch : int, default=512
        Patches per epoch (``patches_per_epoch // batch_size`` optimizer steps).
    max_epochs : int, default=12
        Longest training, and the length of the cosine learning-rate decay.
    patience : int, default=8
        Epochs without a lower validation count error before training stops.
    batch_size : int, default=16
    learning_rate : float, default=2e-3
        Peak learning rate (after the warm-up).
    validation_fraction : float, default=0.2
        With ``n_members=1``, the share of the training images held out for
        early stopping and the calibration (at least one); with more members,
        each holds out ``1 / n_members`` of them.
    test_time_flips : bool or "dihedral", default="dihedral"
        Average the density over the four flips of the image (in the exported
        graph, so prediction costs four passes); ``"dihedral"``: over the eight
        flips and 90-degree rotations (eight passes per network; validation
        during training uses the four flips).
    n_members : int, default=3
        Networks trained by cross-fitting: the training images are split into
        ``n_members`` folds, member *k* is early-stopped on fold *k* and trained
        on the others, and the density is the members' mean (in one exported
        graph). Every training image is then both trained on (by the other
        members) and held out (by its own), and the calibration uses all of
        them. ``1``: one network, ``validation_fraction`` of the images held out.
    calibrate : bool, default=True
        Scale the counts by the held-out images' ratio of true to predicted
        counts (``coef_``, limited to 0.5-2; with ``n_members > 1`` each image
        counted by the member that did not train on it).
    count_weight : float, default=0.0
        Weight of a second loss term, the squared count error of each training
        patch (divided by its pixels, in the pixel loss's units): it penalises
        density missing where objects crowd, which the pixel loss lets pass.
    device : {"auto", "cpu", "cuda"}, default="auto"
    providers : "auto" or list of str, default="auto"
        onnxruntime execution providers for prediction.
    n_threads : int, default=None
        Threads for torch while training and for onnxruntime.
    random_state : int, default=0
    verbose : bool, default=False
        Show a progress bar with the losses and seconds per epoch.

    Attributes
    ----------
    sigma_ : float
        The sigma of the kept ensemble.
    cv_mae_ : dict
        ``{sigma: validation_mae_}`` of every candidate when ``sigma="auto"``
        tried more than one, else empty. The kept sigma's own figure was the
        lowest of them, so it is slightly optimistic.
    intensity_range_ : (n_channels, 2) ndarray
        Black point and gain per channel, from the training images.
    network_ : bytes
        The trained network as ONNX: input ``(1, K, M, N)`` in [0, 1] with M, N
        multiples of ``2**depth_``; output the density ``(1, 1, M, N)``.
    network_sha256_ : str
    depth_ : int
        Poolings of the network.
    n_parameters_ : int
    coef_ : float
        The count calibration (1.0 without ``calibrate``); density maps and
        counts include it.
    history_ : list of dict
        Per epoch of each member of each sigma tried: ``sigma``, ``member``,
        training loss, learning rate, validation count MAE, bias and ratio,
        seconds.
    best_epochs_ : list of int
        Per member, the epoch whose weights it kept.
    best_epoch_ : int
        Their median.
    validation_mae_ : float
        Count error of the held-out images (each by the member that did not
        train on it), after the calibration: an out-of-sample estimate (a little
        optimistic when it also chose sigma, see ``cv_mae_``).
    fit_seconds_ : float
    device_ : str

    Examples
    --------
    >>> import numpy as np
    >>> from featcell.cnn import CNNDensityCounter
    >>> rng = np.random.default_rng(0)
    >>> def blobs(k):
    ...     points = rng.uniform(4, 44, size=(k, 2))
    ...     yy, xx = np.mgrid[:48, :48]
    ...     return sum(np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / 8) for r, c in points), points
    >>> data = [blobs(k) for k in (3, 6, 9, 12, 5)]
    >>> counter = CNNDensityCounter(width=4, max_epochs=2, patches_per_epoch=32)
    >>> counter = counter.fit([d[0] for d in data], [d[1] for d in data])  # doctest: +SKIP
    >>> counter.predict([blobs(7)[0]]).shape  # doctest: +SKIP
    (1,)
    """

    _parameter_constraints: ClassVar[dict] = {
        "sigma": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "sigma_factors": ["array-like"],
        "channels": [list, tuple, None],
        "width": [Interval(Integral, 2, None, closed="left")],
        "depth": [Interval(Integral, 1, 5, closed="both"), StrOptions({"auto"})],
        "patch_size": [Interval(Integral, 8, None, closed="left")],
        "patches_per_epoch": [Interval(Integral, 2, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "patience": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 2, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "validation_fraction": [Interval(Real, 0, 0.5, closed="neither")],
        "test_time_flips": ["boolean", StrOptions({"dihedral"})],
        "n_members": [Interval(Integral, 1, None, closed="left")],
        "calibrate": ["boolean"],
        "count_weight": [Interval(Real, 0, None, closed="left")],
        "device": [StrOptions({"auto", "cpu", "cuda"})],
        "providers": [StrOptions({"auto"}), list, tuple],
        "n_threads": [Interval(Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        sigma="auto",
        *,
        sigma_factors=(0.5, 1.0),
        channels=None,
        width=16,
        depth="auto",
        patch_size=64,
        patches_per_epoch=512,
        max_epochs=12,
        patience=8,
        batch_size=16,
        learning_rate=2e-3,
        validation_fraction=0.2,
        test_time_flips="dihedral",
        n_members=3,
        calibrate=True,
        count_weight=0.0,
        device="auto",
        providers="auto",
        n_threads=None,
        random_state=0,
        verbose=False,
    ):
        self.sigma = sigma
        self.sigma_factors = sigma_factors
        self.channels = channels
        self.width = width
        self.depth = depth
        self.patch_size = patch_size
        self.patches_per_epoch = patches_per_epoch
        self.max_epochs = max_epochs
        self.patience = patience
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.test_time_flips = test_time_flips
        self.n_members = n_members
        self.calibrate = calibrate
        self.count_weight = count_weight
        self.device = device
        self.providers = providers
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, images, points):
        """Train the density network on dot-annotated images and export it to ONNX.

        Parameters
        ----------
        images : list of (M, N[, C]) arrays or paths
            Training images (at least 2); sizes may differ.
        points : list of (k, 2) arrays, or str or path-like
            Per image, the ``(row, col)`` dot positions; or a folder or table of
            points files for :func:`featcell.read_points` (``images`` must then
            be paths).

        Returns
        -------
        self : object
        """
        from ._training import require_torch

        torch = require_torch(type(self).__name__)
        start = time.perf_counter()
        factors = self.sigma_factors  # array-like, checked by the parameter constraints
        if not len(factors) or not all(
            isinstance(f, Real) and not isinstance(f, bool) and 0 < f <= 100 for f in factors
        ):
            raise ValueError(f"sigma_factors={factors!r}; expected a non-empty list of "
                             "positive numbers (multiples of the dot spacing's sigma)")
        images = _check_images(images)
        points = _resolve_points(images, points)
        if len(images) < 2:
            raise ValueError("CNNDensityCounter needs at least 2 training images (one validates)")
        for i, p in enumerate(points):
            if not isinstance(p, np.ndarray):
                raise ValueError(
                    f"points[{i}] is a count ({p!r}); CNNDensityCounter learns from dot "
                    "positions, a (k, 2) array per image"
                )
        spacing = _dot_spacing(points)
        self.depth_ = _auto_depth(spacing) if self.depth == "auto" else int(self.depth)
        if self.patch_size < 2**self.depth_:
            raise ValueError(f"patch_size={self.patch_size} is smaller than the {2**self.depth_} "
                             f"pixels that {self.depth_} poolings halve down to one; raise "
                             "patch_size or lower depth")
        arrays = [_as_channels(_read(item), self.channels, f"image {i}") for i, item in enumerate(images)]
        if len({a.shape[0] for a in arrays}) != 1:
            raise ValueError("the images have different numbers of channels")
        self.n_channels_ = arrays[0].shape[0]
        low, high = _pooled_percentiles([a.reshape(self.n_channels_, -1) for a in arrays],
                                        _DATASET_PERCENTILES).T
        span = high - low
        gain = np.divide(1.0, span, out=np.zeros_like(span), where=span > 0)
        self.intensity_range_ = np.stack([low, gain], 1).astype(np.float32)
        inputs = [self._normalise(a) for a in arrays]
        if self.sigma == "auto":
            sigmas = _sigma_candidates(spacing, factors)
        else:
            sigmas = [float(self.sigma)]

        from . import _training

        seed = _training.fit_seed(self.random_state)
        views = {False: 1, True: 4, "dihedral": 8}[self.test_time_flips]
        threads = torch.get_num_threads()
        if self.n_threads is not None:
            torch.set_num_threads(self.n_threads)
        try:
            device = _training.resolve_device(self.device)
            self.device_ = _training.device_name(device)
            scores, self.history_, best = {}, [], None
            for sigma in sigmas:  # each candidate: the same folds, seeds and patches
                targets = [
                    density_target(p, a.shape[1:], sigma).astype(np.float32)
                    for p, a in zip(points, arrays, strict=True)
                ]
                fitted = self._fit_ensemble(torch, _training, inputs, targets, seed, device,
                                            views)
                for h in fitted["history"]:
                    h["sigma"] = sigma
                self.history_ += fitted["history"]
                scores[sigma] = fitted["validation_mae"]
                if best is None or fitted["validation_mae"] < best[1]["validation_mae"]:
                    best = sigma, fitted
            self.sigma_, fitted = best
            self.cv_mae_ = scores if len(scores) > 1 else {}
            nets = fitted["nets"]
            self.best_epochs_ = fitted["best_epochs"]
            self.best_epoch_ = int(np.median(self.best_epochs_))
            self.coef_ = fitted["coef"]
            self.validation_mae_ = fitted["validation_mae"]
            self.n_parameters_ = int(sum(p.numel() for n in nets for p in n.parameters()))
            example = torch.zeros(1, self.n_channels_, 32, 32)
            graph = _mean_graph(nets, views) if views > 1 or len(nets) > 1 else nets[0]
            self.network_ = _training.export_onnx(
                graph, example, ["input"], ["density"],
                {"input": {0: "batch", 2: "height", 3: "width"},
                 "density": {0: "batch", 2: "height", 3: "width"}},
            )
        finally:
            torch.set_num_threads(threads)
        self.network_sha256_ = hashlib.sha256(self.network_).hexdigest()
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def _fit_ensemble(self, torch, _training, inputs, targets, seed, device, views):
        """Train the members on ``targets`` (one sigma's density maps) from the seed, so
        that every sigma sees the same folds and patches; returns the networks, their
        history and best epochs, the calibration and the held-out count error."""
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(inputs))
        n_members = min(self.n_members, len(inputs))
        if n_members == 1:
            n_val = max(1, int(round(self.validation_fraction * len(inputs))))
            folds = [order[:n_val]]
        else:  # cross-fitting: every image validates one member and trains the others
            folds = np.array_split(order, n_members)
        nets, history, best_epochs, found, wanted = [], [], [], [], []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            generator = torch.Generator().manual_seed(seed)
            for member, val in enumerate(folds):
                train = order[~np.isin(order, val)]
                net, member_history, best, counts = self._fit_member(
                    torch, _training, inputs, targets, train, val, rng, generator, device,
                    views, member,
                )
                nets.append(net)
                history += member_history
                best_epochs.append(best)
                found += list(counts)
                wanted += [float(targets[i].sum()) for i in val]
        found, wanted = np.asarray(found), np.asarray(wanted)
        # held-out counts only: each image by the member that did not train on it; without
        # objects or predictions among them there is nothing to calibrate on
        ratio = wanted.sum() / found.sum() if found.sum() > 0 and wanted.sum() > 0 else 1.0
        coef = float(np.clip(ratio, 0.5, 2.0)) if self.calibrate else 1.0
        return {"nets": nets, "history": history, "best_epochs": best_epochs, "coef": coef,
                "validation_mae": float(np.abs(found * coef - wanted).mean())}

    def _fit_member(self, torch, _training, inputs, targets, train, val, rng, generator,
                    device, views, member):
        """Train one network on the images ``train``, early-stopped on ``val``; returns it,
        its history, its best epoch and its (uncalibrated) counts of the ``val`` images."""
        pixels = np.concatenate([inputs[i].reshape(self.n_channels_, -1) for i in train], 1)
        net = _training.density_fcn(
            self.n_channels_, self.width, pixels.mean(1), pixels.std(1) + 1e-3,
            _DENSITY_SCALE, bias=np.mean([targets[i].mean() for i in train]), depth=self.depth_,
        )
        multiple = 2**self.depth_
        size = self.patch_size - self.patch_size % multiple

        def patches(n):
            xs, ts = [], []
            picks = rng.choice(train, size=n)
            for i in picks:
                image, target = _pad(inputs[i], multiple), _pad(targets[i][None], multiple)
                s = min(size, image.shape[1], image.shape[2])
                s -= s % multiple
                y0 = rng.integers(0, image.shape[1] - s + 1)
                x0 = rng.integers(0, image.shape[2] - s + 1)
                xs.append(image[:, y0 : y0 + s, x0 : x0 + s])
                ts.append(target[:, y0 : y0 + s, x0 : x0 + s])
            side = min(x.shape[-1] for x in xs), min(x.shape[-2] for x in xs)
            xs = np.stack([x[:, : side[1], : side[0]] for x in xs])
            ts = np.stack([t[:, : side[1], : side[0]] for t in ts])
            return torch.from_numpy(xs), torch.from_numpy(ts)

        def sample():
            xb, tb = patches(self.batch_size)
            if xb.shape[-1] == xb.shape[-2]:
                xb, tb = _training.augment_batch(
                    xb, generator, shift=0.0, jitter=0.05, targets=tb
                )
            return xb.to(device), tb.to(device)

        def loss_fn(model, batch):
            xb, tb = batch
            error = model(xb) - tb
            loss = torch.mean(error**2) * _DENSITY_SCALE**2
            if self.count_weight:  # each patch's count error, in the same units
                counts = error.sum(dim=(1, 2, 3)) * _DENSITY_SCALE
                loss = loss + self.count_weight * torch.mean(counts**2) / error[0].numel()
            return loss

        def counts(model, n_views=None):  # validation: the four flips at most
            n_views = min(views, 4) if n_views is None else n_views
            model = _mean_graph([model], n_views) if n_views > 1 else model
            found = []
            for i in val:  # counts of whole validation images
                x = torch.from_numpy(_pad(inputs[i], multiple)[None]).to(device)
                found.append(float(model(x)[..., : inputs[i].shape[1], : inputs[i].shape[2]].sum()))
            return np.array(found)

        wanted = np.array([targets[i].sum() for i in val], dtype=float)

        def validate(model):
            found = counts(model)
            return np.abs(found - wanted).mean(), {
                "val_bias": float((found - wanted).mean()),
                "val_ratio": float(wanted.sum() / found.sum()) if found.sum() > 0 else 1.0,
            }

        history, best = _training.fit_density(
            net, loss_fn, sample, validate,
            steps=max(1, self.patches_per_epoch // self.batch_size),
            max_epochs=self.max_epochs, patience=self.patience,
            learning_rate=self.learning_rate, weight_decay=1e-4, device=device,
            verbose=self.verbose, name=f"CNNDensityCounter member {member + 1}",
        )
        for h in history:
            h["val_count_mae"] = h.pop("val_loss")
            h["member"] = member
        with torch.no_grad():
            found = counts(net.eval(), views)
        return net.to("cpu"), history, best, found

    def predict_density(self, images):
        """The density map of every image (sums to its predicted count).

        Parameters
        ----------
        images : list of (M, N[, C]) arrays or paths

        Returns
        -------
        list of (M, N) ndarray of float32
        """
        check_is_fitted(self, "network_sha256_")
        session = _network_session(
            self.network_, self.network_sha256_, self.providers, self.n_threads,
            "CNNDensityCounter",
        )
        multiple = 2 ** getattr(self, "depth_", 2)  # saved before depth existed: two poolings
        out = []
        for i, item in enumerate(_check_images(images)):
            image = _as_channels(_read(item), self.channels, f"image {i}")
            if image.shape[0] != self.n_channels_:
                raise ValueError(
                    f"image {i} has {image.shape[0]} channel(s) but CNNDensityCounter was "
                    f"fitted on {self.n_channels_}"
                )
            x = _pad(self._normalise(image), multiple)[None]
            density = session.run(None, {"input": x})[0][0, 0]
            out.append(density[: image.shape[1], : image.shape[2]] * np.float32(self.coef_))
        return out

    def predict(self, images):
        """The count of every image: the sum of its density map.

        Parameters
        ----------
        images : list of (M, N[, C]) arrays or paths

        Returns
        -------
        counts : ndarray of shape (n_images,)
        """
        return np.array([float(d.sum()) for d in self.predict_density(images)])

    def predict_grid(self, images, level=3):
        """Objects per cell of a ``2**level x 2**level`` grid over each image, for GAME.

        Parameters
        ----------
        images : list of (M, N[, C]) arrays or paths
        level : int, default=3
            Grid level (see :func:`featcell.metrics.grid_counts`).

        Returns
        -------
        cells : (n_images, 4 ** level) ndarray
            Summed density per cell; a row sums to :meth:`predict`'s count.
        """
        from ..metrics import grid_counts

        return grid_counts(self.predict_density(images), level=level)

    def _normalise(self, image):
        low, gain = self.intensity_range_[:, 0], self.intensity_range_[:, 1]
        out = (image - low[:, None, None]) * gain[:, None, None]
        return np.clip(out, 0.0, 1.0, out=out).astype(np.float32, copy=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        return tags
