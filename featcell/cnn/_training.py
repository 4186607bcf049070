"""Training networks with PyTorch and exporting them to ONNX (imported only to train).

Everything here needs ``torch`` (the ``featcell[train]`` extra); the estimators in
:mod:`featcell.cnn.trained` and :mod:`featcell.cnn.density` import this module inside
``fit`` only, so featcell runs the exported networks without torch.

- :func:`require_torch`: import torch or raise an error naming the extra;
- :class:`SmallResNet`: a ResNet of three basic-block stages for small crops;
- :class:`DensityFCN`: a small U-Net-like fully-convolutional density network;
- :func:`augment_batch`: random dihedral transform, shift and intensity jitter;
- :func:`fit_network`: the loop with early stopping on a validation set;
- :func:`export_onnx`: the trained network as ONNX bytes.
"""

from __future__ import annotations

import copy
import io
import time
import warnings

import numpy as np

_MIN_EPOCH_ITEMS = 1024


def require_torch(who):
    """Import torch, or raise an ImportError naming the ``featcell[train]`` extra."""
    try:
        import torch
    except ImportError as exc:  # also a blocked import (sys.modules["torch"] = None)
        raise ImportError(
            f"{who}.fit trains a network with PyTorch, which is not installed; install "
            "featcell's training extra: pip install 'featcell[train]' (predicting with a "
            "fitted model needs only onnxruntime)"
        ) from exc
    return torch


def fit_seed(random_state):
    """The integer seed of one fit: ``random_state`` itself when an int, else one drawn
    from it (a ``RandomState``; ``None``: a new seed each fit), as scikit-learn does."""
    from numbers import Integral

    from sklearn.utils import check_random_state

    if isinstance(random_state, Integral) and not isinstance(random_state, bool):
        return int(random_state)
    return int(check_random_state(random_state).randint(2**31 - 1))


def resolve_device(device):
    """``"cuda"`` when asked or available (``"auto"``), else ``"cpu"``, as a torch.device."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but torch sees no CUDA device; use 'auto' or 'cpu'")
    return torch.device(device)


def device_name(device):
    """Hardware in words: ``"cuda (NVIDIA H100)"`` or ``"cpu (2 threads)"``."""
    import torch

    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


# ---------------------------------------------------------------------- networks
def _modules():
    import torch
    from torch import nn
    from torch.nn import functional as F

    class BasicBlock(nn.Module):
        """Two 3x3 convolutions with batch norm and a (projected) shortcut (He et al. 2016)."""

        def __init__(self, n_in, n_out, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(n_in, n_out, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(n_out)
            self.conv2 = nn.Conv2d(n_out, n_out, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(n_out)
            self.shortcut = nn.Identity()
            if stride != 1 or n_in != n_out:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(n_in, n_out, 1, stride, bias=False), nn.BatchNorm2d(n_out)
                )

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return F.relu(out + self.shortcut(x))

    class SmallResNet(nn.Module):
        """A 3x3 stem and three stages of one basic block each, strides 2: about 0.3 M
        parameters at ``width=32`` (embedding of ``4 * width``).

        The input is ``(N, K, S, S)`` intensities in [0, 1]; the per-channel mean and
        standard deviation of the training crops are held as buffers and applied first,
        so the exported graph takes the prepared crops as they are.
        """

        def __init__(self, n_channels, n_classes, width, mean, std, dropout=0.2):
            super().__init__()
            self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
            self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
            stem = max(8, width // 2)
            self.stem = nn.Sequential(
                nn.Conv2d(n_channels, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU()
            )
            self.stages = nn.Sequential(
                BasicBlock(stem, width, 2),
                BasicBlock(width, 2 * width, 2),
                BasicBlock(2 * width, 4 * width, 2),
            )
            self.dropout = nn.Dropout(dropout)
            self.fc = nn.Linear(4 * width, n_classes)

        def embed(self, x):
            x = (x - self.mean) / self.std
            return self.stages(self.stem(x)).mean(dim=(2, 3))

        def forward(self, x):
            return self.fc(self.dropout(self.embed(x)))

    class ProbaAndEmbedding(nn.Module):
        """The graph that is exported: class probabilities and the penultimate layer
        (averaged over ``views`` dihedral views; the probabilities are the head's on
        that embedding)."""

        def __init__(self, net, views=1):
            super().__init__()
            self.net = net
            self.views = views

        def forward(self, x):
            z = embed_views(self.net, x, self.views)
            return torch.softmax(self.net.fc(z), dim=1), z

    class DensityFCN(nn.Module):
        """A small U-Net-like density network: ``depth`` poolings, skip connections, a
        non-negative (ReLU: a softplus never reaches zero, and its floor summed over a
        large background biases every count upwards) one-channel density at full resolution.

        Level *l* has ``width * 2**l`` channels. Takes image sides divisible by
        ``2**depth`` (the caller pads). The last layer's output is divided by ``scale``, so
        that the network works with values of order 1.
        """

        def __init__(self, n_channels, width, mean, std, scale, bias=0.0, depth=2):
            super().__init__()
            self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
            self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
            self.scale = float(scale)

            def block(n_in, n_out):
                return nn.Sequential(
                    nn.Conv2d(n_in, n_out, 3, padding=1, bias=False), nn.BatchNorm2d(n_out), nn.ReLU(),
                    nn.Conv2d(n_out, n_out, 3, padding=1, bias=False), nn.BatchNorm2d(n_out), nn.ReLU(),
                )

            sizes = [width * 2**level for level in range(depth + 1)]
            self.encoders = nn.ModuleList(
                block(n_in, n_out) for n_in, n_out in zip([n_channels] + sizes, sizes)
            )
            self.decoders = nn.ModuleList(  # deepest first: upsampled level l + 1 and level l
                block(sizes[level + 1] + sizes[level], sizes[level])
                for level in reversed(range(depth))
            )
            self.out = nn.Conv2d(width, 1, 1)
            with torch.no_grad():  # start at the mean density: no output dead at the ReLU
                self.out.bias.fill_(float(bias) * self.scale)

        def forward(self, x):
            skips = []
            x = (x - self.mean) / self.std
            for level, encoder in enumerate(self.encoders):
                x = encoder(F.max_pool2d(x, 2) if level else x)
                skips.append(x)
            for decoder, skip in zip(self.decoders, reversed(skips[:-1])):
                x = decoder(torch.cat([F.interpolate(x, scale_factor=2.0), skip], 1))
            return F.relu(self.out(x)) / self.scale  # exact zeros: no background bias

    return SmallResNet, ProbaAndEmbedding, DensityFCN


def small_resnet(n_channels, n_classes, width, mean, std):
    return _modules()[0](n_channels, n_classes, width, mean, std)


def _epoch_bar(verbose, max_epochs, name, device):
    """A tqdm bar of training epochs when ``verbose``, else None."""
    if not verbose:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=max_epochs, desc=f"{name} on {device_name(device)}", unit="epoch")


def embed_views(net, x, views=1):
    """``net.embed(x)``, averaged over the 8 flips and 90-degree rotations of each
    input when ``views == 8`` (test-time augmentation: the cells have no preferred
    orientation, so neither should their embedding). Any network with an ``embed``
    method: the small ResNet, the fine-tuned EfficientNet-Lite0."""
    if views == 1:
        return net.embed(x)
    import torch

    flips = [x, x.flip(-1), x.flip(-2), x.flip(-2).flip(-1)]
    z = net.embed(torch.cat(flips + [v.transpose(-2, -1) for v in flips]))
    return z.reshape(8, -1, z.shape[-1]).mean(dim=0)


def proba_and_embedding(net, views=1):
    return _modules()[1](net, views)


def density_fcn(n_channels, width, mean, std, scale, bias=0.0, depth=2):
    return _modules()[2](n_channels, width, mean, std, scale, bias, depth)


def fit_density(net, loss_fn, sample, validate, *, steps, max_epochs, patience, learning_rate,
                weight_decay, device, verbose=False, name="density network"):
    """Train a density network on random patches; keep the best validated epoch.

    AdamW with a one-epoch linear warm-up, then a cosine decay of the learning rate
    over ``max_epochs`` (to 1 % of ``learning_rate``). After every epoch of ``steps``
    optimizer steps an exponential moving average of the weights and batch-norm
    statistics (horizon about one epoch) is validated; training stops after
    ``patience`` epochs without a lower criterion and the best average is kept.

    Parameters
    ----------
    net : torch.nn.Module
    loss_fn : callable(net, batch) -> scalar tensor
    sample : callable() -> batch
        A random (augmented) training batch, on ``device``.
    validate : callable(net) -> (float, dict)
        The criterion (lower is better) of the network in eval mode and extra
        per-epoch figures.

    Returns
    -------
    history : list of dict
        Per epoch: ``epoch``, ``train_loss``, ``val_loss`` (the criterion),
        ``learning_rate``, ``seconds`` and the figures ``validate`` returns.
    best_epoch : int
        1-based epoch whose averaged weights ``net`` holds on return.
    """
    import math

    import torch
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    net.to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=learning_rate, weight_decay=weight_decay)
    total, warmup = steps * max_epochs, min(steps, steps * max_epochs // 10)

    def factor(t):
        if t < warmup:
            return (t + 1) / warmup
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * (t - warmup) / max(1, total - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    average = AveragedModel(
        net, multi_avg_fn=get_ema_multi_avg_fn(1.0 - 1.0 / max(10, steps)), use_buffers=True
    )
    best, best_state, best_epoch, history = np.inf, None, 0, []
    progress = _epoch_bar(verbose, max_epochs, name, device)
    for epoch in range(1, max_epochs + 1):
        start = time.perf_counter()
        net.train()
        total_loss = 0.0
        rate = optimizer.param_groups[0]["lr"]
        for _ in range(steps):
            loss = loss_fn(net, sample())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            average.update_parameters(net)
            total_loss += float(loss.detach())
        evaluated = average.module.eval()
        with torch.no_grad():
            criterion, extras = validate(evaluated)
        criterion = float(criterion)
        seconds = time.perf_counter() - start
        history.append({"epoch": epoch, "train_loss": total_loss / steps, "val_loss": criterion,
                        "learning_rate": rate, "seconds": seconds, **extras})
        if not np.isfinite(best) or criterion < best:
            best, best_epoch = criterion, epoch
            best_state = copy.deepcopy(evaluated.state_dict())
        if progress is not None:
            progress.set_postfix(train=f"{total_loss / steps:.3f}", val=f"{criterion:.3f}",
                                 best=best_epoch, s_per_epoch=f"{seconds:.1f}")
            progress.update()
        if epoch - best_epoch >= patience:
            break
    if progress is not None:
        progress.close()
    if best_state is not None:  # None only if every criterion was NaN
        net.load_state_dict(best_state)
    net.eval()
    return history, best_epoch


# ---------------------------------------------------------------------- augmentation
def augment_batch(x, generator, *, shift=0.1, jitter=0.05, targets=None):
    """Randomly flip, rotate by multiples of 90 degrees, shift and jitter a batch.

    Parameters
    ----------
    x : (B, K, S, S) torch.Tensor
        Square inputs in [0, 1].
    generator : torch.Generator
        Source of every random choice (seeded: training is reproducible).
    shift : float
        Largest shift, as a fraction of the side (circular, so no black border
        appears that the unshifted crops lack); 0 for none.
    jitter : float
        Intensity jitter: each crop's channels are scaled by ``exp(N(0, jitter))``;
        0 for none. Kept small: brightness often carries the biology (DNA content).
    targets : (B, 1, S, S) torch.Tensor, optional
        Maps that must follow the geometric transforms (density maps); not jittered.

    Returns
    -------
    x (and targets, when given), transformed.
    """
    import torch

    b, k, s, _ = x.shape
    draws = torch.randint(0, 8, (b,), generator=generator).tolist()
    max_shift = int(round(shift * s))
    moves = torch.randint(-max_shift, max_shift + 1, (b, 2), generator=generator).tolist()
    out, out_t = torch.empty_like(x), None if targets is None else torch.empty_like(targets)
    for i, (d, (dy, dx)) in enumerate(zip(draws, moves, strict=True)):
        pieces = [x[i]] if targets is None else [x[i], targets[i]]
        for j, p in enumerate(pieces):
            if d >= 4:
                p = p.flip(-1)
            p = torch.rot90(p, d % 4, dims=(-2, -1))
            if dy or dx:  # circular: the background that leaves one side enters the other
                p = torch.roll(p, (dy, dx), dims=(-2, -1))
            (out if j == 0 else out_t)[i] = p
    if jitter:
        out = out * torch.exp(torch.randn((b, k, 1, 1), generator=generator) * jitter)
    return out if targets is None else (out, out_t)


# ---------------------------------------------------------------------- training loop
def fit_network(
    net,
    loss_fn,
    train,
    validation,
    *,
    make_batch,
    batch_size,
    learning_rate,
    weight_decay,
    max_epochs,
    patience,
    device,
    generator,
    verbose=False,
    name="network",
    min_epoch_items=_MIN_EPOCH_ITEMS,
    validate=None,
    average_weights=False,
    schedule="plateau",
    first_cycle=10,
    schedule_epochs=None,
):
    """Train with AdamW until the validation loss stops improving; keep the best epoch.

    Parameters
    ----------
    net : torch.nn.Module
    loss_fn : callable(net, batch) -> scalar tensor
        ``batch`` as returned by ``make_batch`` (already on ``device``).
    train, validation : int
        Numbers of training and validation items; ``validation=0`` trains for
        ``max_epochs`` without validating and keeps the last epoch (a refit on all
        items for an epoch count chosen before).
    make_batch : callable(indices, training) -> batch
        Builds (and, when ``training``, augments) the batch of these items.
    min_epoch_items : int
        An epoch draws at least this many items (a small set is repeated), so that
        early stopping compares epochs of enough optimizer steps.
    validate : callable(net) -> (float, dict), optional
        The validation criterion (lower is better) of the network in eval mode, and
        extra per-epoch figures for the history; by default the mean of ``loss_fn``
        over the validation items.
    average_weights : bool
        Validate (and keep) an exponential moving average of the weights and batch-norm
        statistics, over about one epoch of optimizer steps, instead of the last step's
        weights: far less noisy from epoch to epoch, so that early stopping picks an
        epoch for its trend, not for a lucky step.
    max_epochs, patience : int
        Stop after ``patience`` epochs without a lower validation loss, or after
        ``max_epochs``; the learning rate is divided by 5 after ``patience // 2``
        epochs without improvement (``schedule="plateau"``).
    schedule : {"plateau", "cosine"}
        ``"cosine"``: cosine annealing with warm restarts (SGDR, Loshchilov & Hutter
        2017), per optimizer step, over cycles of ``first_cycle``, then twice, four
        times... as many epochs (the last cycle takes the epochs left of
        ``max_epochs``). Training stops at the end of the first cycle that did not
        lower the validation loss: a longer cycle is run only while the last one
        helped, so the training length follows the validation, not a fixed count
        (``patience`` is not used: mid-cycle, the learning rate is high and the
        validation loss is not yet what the cycle will reach).
    first_cycle : int
        Epochs of the first cosine cycle.
    schedule_epochs : int, optional
        Epochs the cosine cycles are laid over (default ``max_epochs``): a refit that
        stops at the validated best epoch follows the validated run's learning rates.

    Returns
    -------
    history : list of dict
        Per epoch: ``epoch``, ``train_loss``, ``val_loss`` (the criterion), ``seconds``,
        ``learning_rate`` (at the epoch's last step) and the figures ``validate`` returns.
    best_epoch : int
        1-based epoch whose weights ``net`` holds on return.
    """
    import torch

    net.to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=learning_rate, weight_decay=weight_decay)
    if schedule not in ("plateau", "cosine"):
        raise ValueError(f"schedule={schedule!r}: expected 'plateau' or 'cosine'")
    scheduler = None
    if schedule == "plateau":
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=0.2, patience=max(1, patience // 2)
        )
    cycle_ends = _cycle_ends(first_cycle, schedule_epochs or max_epochs)
    best, best_state, best_epoch, history = np.inf, None, 0, []
    repeats = max(1, -(-min_epoch_items // train))
    steps_per_epoch = max(1, -(-(repeats * train) // batch_size))
    model = net
    if average_weights:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        steps = max(1, (repeats * train) // batch_size)
        decay = 1.0 - 1.0 / max(10, steps)  # a horizon of about one epoch
        model = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    progress = _epoch_bar(verbose, max_epochs, name, device)
    for epoch in range(1, max_epochs + 1):
        start = time.perf_counter()
        net.train()
        # an epoch is at least _MIN_EPOCH_ITEMS draws (small sets are repeated, so that
        # early stopping compares epochs of enough optimizer steps)
        order = torch.cat([torch.randperm(train, generator=generator) for _ in range(repeats)])
        order = order.numpy()
        total, seen = 0.0, 0
        cycle = int(np.searchsorted(cycle_ends, epoch))  # the cycle this epoch belongs to
        cycle_start = cycle_ends[cycle - 1] if cycle else 0
        cycle_steps = (cycle_ends[cycle] - cycle_start) * steps_per_epoch
        for step, first in enumerate(range(0, len(order), batch_size)):
            batch_items = order[first : first + batch_size]
            if len(batch_items) < 2:  # batch norm needs two samples
                continue
            if schedule == "cosine":
                t = ((epoch - 1 - cycle_start) * steps_per_epoch + step) / cycle_steps
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate * 0.5 * (1.0 + np.cos(np.pi * min(1.0, t)))
            loss = loss_fn(net, make_batch(batch_items, True))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if average_weights:
                model.update_parameters(net)
            total += float(loss.detach()) * len(batch_items)
            seen += len(batch_items)
        net.eval()
        evaluated = model.module if average_weights else net
        evaluated.eval()
        extras = {}
        with torch.no_grad():
            if validation == 0:
                val_loss = float("nan")
            elif validate is None:
                val_total = 0.0
                for first in range(0, validation, 4 * batch_size):
                    items = np.arange(first, min(validation, first + 4 * batch_size))
                    val_total += float(loss_fn(evaluated, make_batch(items, False))) * len(items)
                val_loss = val_total / max(1, validation)
            else:
                val_loss, extras = validate(evaluated)
                val_loss = float(val_loss)
        if scheduler is not None and validation:
            scheduler.step(val_loss)
        seconds = time.perf_counter() - start
        history.append(
            {"epoch": epoch, "train_loss": total / max(1, seen), "val_loss": val_loss,
             "seconds": seconds, "learning_rate": optimizer.param_groups[0]["lr"], **extras}
        )
        if validation == 0:  # no validation: keep the last epoch
            best_epoch = epoch
        elif not np.isfinite(best) or val_loss < best - 1e-4 * abs(best):
            best, best_epoch = val_loss, epoch
            best_state = copy.deepcopy(evaluated.state_dict())
        if progress is not None:
            progress.set_postfix(
                train=f"{total / max(1, seen):.3f}", val=f"{val_loss:.3f}", best=best_epoch,
                s_per_epoch=f"{seconds:.1f}",
            )
            progress.update()
        if schedule == "plateau" and epoch - best_epoch >= patience:
            break
        if schedule == "cosine" and epoch == cycle_ends[cycle] and best_epoch <= cycle_start:
            break  # this cycle did not improve on the previous ones: a longer one will not
    if progress is not None:
        progress.close()
    if validation == 0 and average_weights:
        net.load_state_dict(model.module.state_dict())
    elif best_state is not None:  # None only if every validation loss was NaN
        net.load_state_dict(best_state)
    net.eval()
    return history, best_epoch


def _cycle_ends(first_cycle, max_epochs):
    """Last epochs (1-based) of cosine cycles of ``first_cycle``, 2x, 4x... epochs; the last
    cycle ends at ``max_epochs`` (it takes what is left, rather than leaving a short cycle)."""
    ends, start, length = [], 0, max(1, int(first_cycle))
    while start + length < max_epochs:
        start += length
        ends.append(start)
        length *= 2
    ends.append(max_epochs)
    if len(ends) > 2 and ends[-1] - ends[-2] < ends[-2] - ends[-3]:
        ends.pop(-2)  # a last cycle shorter than the one before joins it
    elif len(ends) == 2 and ends[-1] - ends[-2] < ends[0]:
        ends.pop(0)
    return np.asarray(ends)


# ---------------------------------------------------------------------- export
def export_onnx(module, example, input_names, output_names, dynamic_axes):
    """The module (in eval mode, on the CPU) exported to ONNX (opset 17), as bytes."""
    import torch

    module = module.to("cpu").eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            module,
            example,
            buffer,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            opset_version=17,
            dynamo=False,
        )
    return buffer.getvalue()
