"""The per-cell sample container: :class:`CellSet`.

One sample is one cell. A :class:`CellSet` stores, for every cell, the crop of
every channel around the object (with a context margin), the object's mask in
crop coordinates, and its metadata (image id, object number, bounding box,
centroid and any user columns). When the cells come from a whole image
(:meth:`CellSet.from_labels`, :meth:`CellSet.from_boxes`), that image is kept
too, as the cells' *field*, for measurements CellProfiler makes on the whole
image (granularity).

Pixels of all cells live in a few flat buffers, so that indexing, pickling to
joblib workers and vectorised feature extraction over all objects are cheap.
"""

from __future__ import annotations

import copy
import re
from functools import cached_property

import numpy as np
import pandas as pd

__all__ = ["CellSet", "FlatCells"]

_CHANNEL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
_BASE_COLUMNS = [
    "Metadata_ImageID",
    "Metadata_ObjectNumber",
    "Metadata_BoundingBox_MinY",
    "Metadata_BoundingBox_MinX",
    "Metadata_BoundingBox_MaxY",
    "Metadata_BoundingBox_MaxX",
    "Metadata_Location_Center_Y",
    "Metadata_Location_Center_X",
    "Metadata_TouchesBorder",
]
_GROUP_ALIASES = {"image": "Metadata_ImageID", "object": "Metadata_ObjectNumber"}


class FlatCells:
    """All crop pixels of a :class:`CellSet` as flat, vectorisable arrays.

    ``obj``, ``row`` and ``col`` are built on first use, so code that needs
    only values and masks pays nothing for them.

    Attributes
    ----------
    values : (C, P) ndarray of float32
        Intensity of every crop pixel of every cell, per channel.
    mask : (P,) ndarray of bool
        Whether the pixel belongs to its cell.
    shapes : (N, 2) ndarray of intp
        Crop shape ``(h, w)`` of every cell.
    obj : (P,) ndarray of intp
        Index of the cell (0 .. N-1) that owns the pixel.
    row, col : (P,) ndarray of intp
        Pixel coordinates inside the cell's crop.
    """

    def __init__(self, values, mask, shapes):
        self.values = values
        self.mask = mask
        self.shapes = shapes

    @cached_property
    def obj(self):
        h, w = self.shapes[:, 0], self.shapes[:, 1]
        return np.repeat(np.arange(len(self.shapes), dtype=np.intp), h * w)

    @cached_property
    def _row_width(self):
        return np.repeat(self.shapes[:, 1], self.shapes[:, 0])

    @cached_property
    def row(self):
        # one entry per crop row, expanded to pixels: only repeats, no division
        h = self.shapes[:, 0]
        row_of_rows = np.arange(h.sum(), dtype=np.intp) - np.repeat(np.cumsum(h) - h, h)
        return np.repeat(row_of_rows, self._row_width)

    @cached_property
    def col(self):
        width = self._row_width
        return np.arange(len(self.mask), dtype=np.intp) - np.repeat(np.cumsum(width) - width, width)


def _check_channel_names(channels, n_channels):
    if channels is None:
        return tuple(f"Ch{i + 1}" for i in range(n_channels))
    if isinstance(channels, str):
        channels = [channels]
    channels = tuple(channels)
    if len(channels) != n_channels:
        raise ValueError(
            f"channels has {len(channels)} names {channels!r} but the image has "
            f"{n_channels} channel(s)"
        )
    for name in channels:
        if not isinstance(name, str) or not _CHANNEL_NAME.match(name):
            raise ValueError(
                f"channel name {name!r} is not valid: use letters and digits only, starting "
                "with a letter (no underscores, so feature names stay parseable), e.g. 'DNA'"
            )
    if len(set(channels)) != len(channels):
        raise ValueError(f"channels has repeated names: {channels!r}")
    return channels


def _as_float(image, rescale, name):
    """Return ``image`` as float32, rescaling integers by their dtype range."""
    image = np.asarray(image)
    if image.dtype == bool or not (
        np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)
    ):
        raise TypeError(f"{name} must hold integer or float intensities, got dtype {image.dtype}")
    if rescale not in ("dtype", None):
        raise ValueError(f"rescale must be 'dtype' or None, got {rescale!r}")
    if np.issubdtype(image.dtype, np.integer):
        scale = float(np.iinfo(image.dtype).max) if rescale == "dtype" else 1.0
        out = image.astype(np.float32)
        out /= np.float32(scale)
        return out
    with np.errstate(over="ignore"):  # values beyond float32 are named below
        out = image.astype(np.float32, copy=False)
    if not np.isfinite(out).all():  # (one pass, faster than the minimum and maximum)
        bad = ~np.isfinite(image)
        if not bad.any():  # finite, but beyond float32's range
            raise ValueError(
                f"{name} holds values up to {float(np.abs(image).max()):.3g}, beyond float32's "
                f"range ({float(np.finfo(np.float32).max):.3g}); rescale the intensities"
            )
        raise ValueError(
            f"{name} contains {int(bad.sum())} NaN or infinite pixel(s); replace them "
            "(e.g. np.nan_to_num) or mask them out before building cells"
        )
    return out


def _channels_first(image, spatial_shape, channel_axis, name="image"):
    """Return a (C, H, W) view of a 2-D or multi-channel image."""
    if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
        raise TypeError(f"{name} must be an array, got the path {image!r}; read files with "
                        "featcell.read_image (or read whole folders with featcell.read_cells)")
    image = np.asarray(image)
    raw = image.shape
    if image.ndim == 2:
        image = image[np.newaxis]
    elif image.ndim == 3:
        image = np.moveaxis(image, channel_axis, 0)
    else:
        raise ValueError(
            f"{name} must be 2-D (H, W) or 2-D with channels (H, W, C); got {image.ndim}-D "
            f"shape {np.shape(image)}. For a z-stack or time series, build one CellSet per plane."
        )
    if spatial_shape is not None and image.shape[1:] != tuple(spatial_shape):
        hint = ""
        if len(raw) == 3 and channel_axis in (-1, 2) and raw[1:] == tuple(spatial_shape):
            hint = " (channels first? pass channel_axis=0)"
        raise ValueError(
            f"labels has shape {tuple(spatial_shape)} but {name} has spatial shape "
            f"{image.shape[1:]}{hint}"
        )
    return image


def _check_labels(labels):
    labels = np.asarray(labels)
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(
            f"labels must be an integer instance label image (0 = background), got dtype "
            f"{labels.dtype}; use skimage.measure.label(mask) to label a binary mask"
        )
    if labels.ndim != 2:
        raise ValueError(f"labels must be 2-D (H, W), got shape {labels.shape}")
    if labels.size and labels.dtype.kind == "i" and labels.min() < 0:  # (unsigned: never)
        raise ValueError("labels contains negative values; expected 0 = background, >0 = object")
    if labels.size and labels.dtype == np.uint64 and labels.max() > np.iinfo(np.int64).max:
        raise ValueError(f"labels holds object ids up to {labels.max()}; expected ids below "
                         "2**63 (renumber the objects 1, 2, ...)")
    return labels


def _metadata_column(key):
    """The column of a ``metadata`` key: its name with the ``Metadata_`` prefix."""
    if not isinstance(key, str):
        raise TypeError(f"metadata keys must be column names (str), got {key!r}")
    return key if key.startswith("Metadata_") else f"Metadata_{key}"


def _metadata_frame(n, image_id, bbox, centroid, touches, object_numbers, metadata):
    frame = pd.DataFrame(
        {
            "Metadata_ImageID": np.full(n, "" if image_id is None else str(image_id), dtype=object),
            "Metadata_ObjectNumber": np.asarray(object_numbers, dtype=np.int64),
            "Metadata_BoundingBox_MinY": bbox[:, 0],
            "Metadata_BoundingBox_MinX": bbox[:, 1],
            "Metadata_BoundingBox_MaxY": bbox[:, 2],
            "Metadata_BoundingBox_MaxX": bbox[:, 3],
            "Metadata_Location_Center_Y": centroid[:, 0],
            "Metadata_Location_Center_X": centroid[:, 1],
            "Metadata_TouchesBorder": touches,
        }
    )
    if metadata:
        for key, value in dict(metadata).items():
            column = _metadata_column(key)
            value = np.asarray(value, dtype=object) if np.ndim(value) else value
            if np.ndim(value) and len(value) != n:
                raise ValueError(
                    f"metadata[{key!r}] has {len(value)} values but there are {n} cells"
                )
            frame[column] = value
    return frame


class CellSet:
    """A set of single cells: per-cell crops, masks and metadata.

    One sample is one cell, so a CellSet works as ``X`` in scikit-learn:
    ``len(X)``, ``X[indices]`` (integer arrays, slices, boolean masks) and
    ``X.groups("image")`` for grouped cross-validation. Build it with one of
    the constructors rather than directly.

    Intensities are stored as float32. Integer images are divided by their
    dtype maximum (``uint8`` by 255, ``uint16`` by 65535), as CellProfiler does,
    unless ``rescale=None``.

    Parameters
    ----------
    values : (C, P) ndarray of float32
        Flat crop pixels of all cells, per channel.
    mask : (P,) ndarray of bool
        Flat crop masks of all cells.
    shapes : (N, 2) ndarray of int
        Crop shape of every cell.
    metadata : pandas.DataFrame
        One row per cell, ``Metadata_*`` columns.
    channel_names : tuple of str
        One name per channel.
    origins : (N, 2) ndarray of int, optional
        Crop top-left corner in image coordinates.
    fields : tuple of (images, index), optional
        The whole images the cells were cut from, each (C, H, W) float32, and
        for every cell the position of its image in ``images`` (-1: none).

    See Also
    --------
    CellSet.from_labels, CellSet.from_boxes, CellSet.from_crops, CellSet.concat

    Examples
    --------
    >>> import numpy as np
    >>> from featcell import CellSet
    >>> image = np.zeros((20, 20), dtype=np.uint8); image[2:6, 2:6] = 200
    >>> labels = np.zeros((20, 20), dtype=np.int32); labels[2:6, 2:6] = 7
    >>> cells = CellSet.from_labels(image, labels, channels=["DNA"], image_id="a")
    >>> len(cells), cells.metadata["Metadata_ObjectNumber"].tolist()
    (1, [7])
    """

    def __init__(self, values, mask, shapes, metadata, channel_names, origins=None, fields=None):
        self._values = np.ascontiguousarray(values, dtype=np.float32)
        self._mask = np.ascontiguousarray(mask, dtype=bool)
        self._shapes = np.asarray(shapes, dtype=np.intp).reshape(-1, 2)
        sizes = self._shapes[:, 0] * self._shapes[:, 1]
        self._starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.intp)
        self._origins = (
            np.zeros_like(self._shapes) if origins is None else np.asarray(origins, np.intp)
        )
        self.metadata = metadata.reset_index(drop=True)
        self.channel_names = tuple(channel_names)
        if fields is None:
            fields = ((), np.full(len(self._shapes), -1, np.intp))
        self._fields = (tuple(fields[0]), np.asarray(fields[1], np.intp))
        if self._values.shape != (len(self.channel_names), self._starts[-1]):
            raise ValueError(
                f"values has shape {self._values.shape}, expected "
                f"({len(self.channel_names)}, {self._starts[-1]})"
            )
        if len(self.metadata) != len(self._shapes):
            raise ValueError(
                f"metadata has {len(self.metadata)} rows but there are {len(self._shapes)} cells"
            )

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_labels(
        cls,
        image,
        labels,
        channels=None,
        image_id=None,
        *,
        channel_axis=-1,
        margin=8,
        rescale="dtype",
        exclude_border=False,
        metadata=None,
    ):
        """Cells of one image from an instance label image.

        Parameters
        ----------
        image : (H, W) or (H, W, C) ndarray, or list of (H, W) ndarrays
            Intensity image. A list is stacked as channels.
        labels : (H, W) ndarray of int
            Instance labels (Cellpose/StarDist/CellProfiler style): 0 is
            background, every other value one object. Ids need not be
            consecutive.
        channels : list of str, optional
            Channel names (letters and digits, e.g. ``["DNA", "PH3"]``).
            Default ``Ch1``, ``Ch2``, ...
        image_id : str, optional
            Stored in ``Metadata_ImageID``; used for grouped CV.
        channel_axis : int, default=-1
            Channel axis of a 3-D ``image`` (``0`` for channels-first stacks).
        margin : int, default=8
            Context pixels kept around each object's bounding box.
        rescale : {"dtype", None}, default="dtype"
            Divide integer images by their dtype maximum.
        exclude_border : bool, default=False
            Drop objects touching the image border. Either way,
            ``Metadata_TouchesBorder`` records it.
        metadata : dict, optional
            Extra columns (scalars or one value per object), stored as
            ``Metadata_<key>``.

        Returns
        -------
        CellSet
            One cell per label id, in increasing id order. An image with no
            objects gives an empty CellSet.

        Examples
        --------
        >>> import numpy as np
        >>> from featcell import CellSet
        >>> labels = np.zeros((32, 32), dtype=np.uint16)
        >>> labels[4:10, 4:10] = 1; labels[20:30, 15:25] = 5
        >>> image = np.random.default_rng(0).random((32, 32))
        >>> cells = CellSet.from_labels(image, labels, channels=["DNA"], image_id="w1")
        >>> len(cells), cells.groups("image").tolist()
        (2, ['w1', 'w1'])
        """
        labels = _check_labels(labels)
        image, channel_axis = _stacked_planes(image, channel_axis)
        stack = _channels_first(image, labels.shape, channel_axis)
        stack = _as_float(stack, rescale, "image")
        channel_names = _check_channel_names(channels, stack.shape[0])
        margin = _check_margin(margin)

        ids, boxes = _object_boxes(labels)
        if ids.size == 0:
            return cls._empty(channel_names, image_id, metadata)
        H, W = labels.shape
        touches = (boxes[:, 0] == 0) | (boxes[:, 1] == 0) | (boxes[:, 2] == H) | (boxes[:, 3] == W)
        if exclude_border:
            keep = ~touches
            ids, boxes, touches = ids[keep], boxes[keep], touches[keep]
            if ids.size == 0:
                return cls._empty(channel_names, image_id, metadata)
        origins = np.maximum(boxes[:, :2] - margin, 0)
        ends = np.minimum(boxes[:, 2:] + margin, [H, W])
        _check_window_area(origins, ends, (H, W), "the objects of labels")
        values, mask, shapes, centroid = _gather_windows(stack, labels, ids, origins, ends)
        frame = _metadata_frame(len(ids), image_id, boxes, centroid, touches, ids, metadata)
        fields = (_own(stack, image),), np.zeros(len(ids), np.intp)
        return cls(values, mask, shapes, frame, channel_names, origins, fields)

    @classmethod
    def from_boxes(
        cls,
        image,
        boxes,
        channels=None,
        image_id=None,
        *,
        channel_axis=-1,
        margin=8,
        rescale="dtype",
        metadata=None,
    ):
        """Cells of one image from bounding boxes, segmenting each box classically.

        Parameters
        ----------
        image : (H, W) or (H, W, C) ndarray
            Intensity image.
        boxes : (N, 4) array-like
            Pascal VOC style ``xmin, ymin, xmax, ymax`` in pixel coordinates
            (``xmax``/``ymax`` exclusive); clipped to the image.
        channels, image_id, channel_axis, margin, rescale, metadata
            As in :meth:`from_labels`.

        Returns
        -------
        CellSet
            One cell per box, in the order given, so per-box labels line up.
            The mask is the dominant object inside the box, told from the
            background around the box (:func:`featcell.segmentation.segment_object`);
            keep ``margin > 0`` for tight, hand-drawn boxes.

        Examples
        --------
        >>> import numpy as np
        >>> from featcell import CellSet
        >>> image = np.random.default_rng(0).normal(0.1, 0.02, (40, 40))
        >>> image[10:20, 10:20] += 0.8                 # a 10x10 cell
        >>> cells = CellSet.from_boxes(image, [[9, 9, 21, 21]])
        >>> bool(abs(int(cells.mask(0).sum()) - 100) <= 3)
        True
        """
        from .segmentation import segment_object

        stack = _channels_first(image, None, channel_axis)
        stack = _as_float(stack, rescale, "image")
        channel_names = _check_channel_names(channels, stack.shape[0])
        margin = _check_margin(margin)
        boxes = np.asarray(boxes, dtype=float)
        if boxes.shape == (4,):  # one box
            boxes = boxes[None]
        elif boxes.size == 0:
            boxes = np.empty((0, 4))
        if boxes.ndim != 2 or boxes.shape[1] != 4:  # a (4, N) array is not N boxes
            raise ValueError(f"boxes must have shape (N, 4) as xmin, ymin, xmax, ymax; got "
                             f"{boxes.shape}")
        if not np.isfinite(boxes).all():
            raise ValueError(f"boxes {np.flatnonzero(~np.isfinite(boxes).all(axis=1)).tolist()} "
                             "hold NaN or infinite coordinates")
        if len(boxes) == 0:
            return cls._empty(channel_names, image_id, metadata)
        H, W = stack.shape[1:]
        x0 = np.clip(np.floor(boxes[:, 0]), 0, W).astype(np.intp)
        y0 = np.clip(np.floor(boxes[:, 1]), 0, H).astype(np.intp)
        x1 = np.clip(np.ceil(boxes[:, 2]), 0, W).astype(np.intp)
        y1 = np.clip(np.ceil(boxes[:, 3]), 0, H).astype(np.intp)
        empty = (x1 <= x0) | (y1 <= y0)
        if empty.any():
            raise ValueError(
                f"boxes {np.flatnonzero(empty).tolist()} are empty after clipping to the "
                f"image ({H}x{W}); expected xmin < xmax and ymin < ymax inside the image"
            )
        origins = np.column_stack([np.maximum(y0 - margin, 0), np.maximum(x0 - margin, 0)])
        ends = np.column_stack([np.minimum(y1 + margin, H), np.minimum(x1 + margin, W)])
        _check_window_area(origins, ends, (H, W), "the boxes")
        crops, masks, centroid = [], [], []
        for k in range(len(boxes)):
            crop = stack[:, origins[k, 0] : ends[k, 0], origins[k, 1] : ends[k, 1]]
            oy, ox = y0[k] - origins[k, 0], x0[k] - origins[k, 1]
            box = (oy, ox, oy + y1[k] - y0[k], ox + x1[k] - x0[k])
            if crop.shape[1:] == (box[2] - box[0], box[3] - box[1]):  # no context around it
                mask = segment_object(crop)
            else:  # background measured outside the (often tight) box, mask kept inside it
                mask = segment_object(crop, box=box)
            rr, cc = np.nonzero(mask)
            centroid.append([rr.mean() + origins[k, 0], cc.mean() + origins[k, 1]])
            crops.append(crop)
            masks.append(mask)
        bbox = np.column_stack([y0, x0, y1, x1])
        touches = (y0 == 0) | (x0 == 0) | (y1 == H) | (x1 == W)
        frame = _metadata_frame(
            len(boxes), image_id, bbox, np.asarray(centroid), touches,
            np.arange(1, len(boxes) + 1), metadata,
        )
        fields = (_own(stack, image),), np.zeros(len(boxes), np.intp)
        return cls._from_lists(crops, masks, frame, channel_names, origins, fields)

    @classmethod
    def from_crops(
        cls,
        crops,
        masks=None,
        channels=None,
        image_id=None,
        *,
        rescale="dtype",
        metadata=None,
    ):
        """Cells from pre-cropped single-cell images (e.g. imaging flow cytometry).

        Parameters
        ----------
        crops : (N, C, H, W) or (N, H, W) array-like, or list of (C, h, w)/(h, w) arrays
            One crop per cell, channels first.
        masks : (N, H, W) array-like of bool, or list of (h, w) arrays, optional
            The cell in each crop. Without masks, the dominant object in every
            crop is segmented (:func:`featcell.segmentation.segment_object`).
        channels, rescale
            As in :meth:`from_labels`.
        image_id : str or array-like of str, optional
            One id for all crops, or one per crop (e.g. the source field or
            well, for grouped CV). Default: each crop is its own image,
            ``"crop<i>"``.
        metadata : dict, optional
            Extra ``Metadata_<key>`` columns.

        Returns
        -------
        CellSet

        Examples
        --------
        >>> import numpy as np
        >>> from featcell import CellSet
        >>> crops = np.zeros((3, 2, 16, 16), dtype=np.uint16)
        >>> crops[:, :, 4:12, 4:12] = 1000
        >>> cells = CellSet.from_crops(crops, channels=["BF", "SSC"])
        >>> len(cells), cells.n_channels
        (3, 2)
        """
        from .segmentation import segment_object

        if isinstance(crops, np.ndarray) or not isinstance(crops, (list, tuple)):
            arr = np.asarray(crops)
            if arr.ndim == 3:
                arr = arr[:, np.newaxis]
            if arr.ndim != 4:
                raise ValueError(
                    f"crops must have shape (N, C, H, W) or (N, H, W); got {arr.shape}"
                )
            crops = list(arr)
        else:
            crops = [np.asarray(c)[np.newaxis] if np.ndim(c) == 2 else np.asarray(c) for c in crops]
        n = len(crops)
        for i, c in enumerate(crops):
            if c.ndim != 3:
                raise ValueError(f"crop {i} must be (C, h, w) or (h, w); got shape {c.shape}")
        n_channels = crops[0].shape[0] if n else (len(channels) if channels else 1)
        if any(c.shape[0] != n_channels for c in crops):
            raise ValueError("all crops must have the same number of channels")
        channel_names = _check_channel_names(channels, n_channels)
        crops = [_as_float(c, rescale, f"crop {i}") for i, c in enumerate(crops)]
        if masks is None:
            masks = [segment_object(c) for c in crops]
        else:
            if len(masks) != n:
                raise ValueError(f"masks has {len(masks)} entries but crops has {n}")
            masks = [np.asarray(m).astype(bool) for m in masks]
            for i, (c, m) in enumerate(zip(crops, masks)):
                if m.shape != c.shape[1:]:
                    raise ValueError(f"mask {i} has shape {m.shape} but crop {i} is {c.shape[1:]}")
        if n == 0:
            return cls._empty(channel_names, image_id, metadata)
        bbox, centroid = [], []
        for m in masks:
            rr, cc = np.nonzero(m)
            if rr.size == 0:
                raise ValueError("a crop mask is empty; every crop must contain its cell")
            bbox.append([rr.min(), cc.min(), rr.max() + 1, cc.max() + 1])
            centroid.append([rr.mean(), cc.mean()])
        if image_id is None:
            image_id = np.array([f"crop{i}" for i in range(n)], dtype=object)
        frame = _metadata_frame(
            n, None, np.asarray(bbox), np.asarray(centroid), np.zeros(n, bool),
            np.arange(1, n + 1), metadata,
        )
        if np.ndim(image_id) and np.shape(image_id) != (n,):
            raise ValueError(f"image_id has shape {np.shape(image_id)}; expected one id, or "
                             f"one per crop ({n})")
        frame["Metadata_ImageID"] = (
            np.asarray(image_id, dtype=object).astype(str)
            if np.ndim(image_id) else str(image_id)
        )
        return cls._from_lists(crops, masks, frame, channel_names, np.zeros((n, 2), np.intp))

    @classmethod
    def from_compartments(cls, image, labels, channels=None, image_id=None, **kwargs):
        """Cells measured in several compartments (nuclei, cells, cytoplasm), one row per cell.

        Parameters
        ----------
        image : (H, W) or (H, W, C) ndarray, or list of (H, W) ndarrays
            Intensity image.
        labels : dict of str to (H, W) ndarray of int
            One label image per compartment, e.g. ``{"Nuclei": nuclei,
            "Cells": cells}``.
        channels, image_id
            As in :meth:`from_labels`.
        **kwargs
            ``parent``, ``cytoplasm``, and the keywords of :meth:`from_labels`;
            see :func:`featcell.compartments.cells_from_compartments`.

        Returns
        -------
        featcell.compartments.CompartmentCellSet
            A CellSet whose cells carry every compartment's mask; each
            feature transformer measures the one named by its
            ``compartment``, and :class:`~featcell.CellFeatures` all of them.

        Examples
        --------
        >>> import numpy as np
        >>> from featcell import CellSet
        >>> cells = np.zeros((20, 20), np.int32); cells[2:18, 2:18] = 1
        >>> nuclei = np.zeros((20, 20), np.int32); nuclei[7:12, 7:12] = 1
        >>> X = CellSet.from_compartments(np.ones((20, 20)), {"Nuclei": nuclei, "Cells": cells})
        >>> X.compartment_names
        ('Nuclei', 'Cells', 'Cytoplasm')
        """
        from .compartments import cells_from_compartments

        return cells_from_compartments(image, labels, channels, image_id, **kwargs)

    @classmethod
    def concat(cls, cellsets):
        """Concatenate CellSets with the same channels into one.

        Parameters
        ----------
        cellsets : sequence of CellSet

        Returns
        -------
        CellSet

        Examples
        --------
        >>> import numpy as np
        >>> from featcell import CellSet
        >>> a = CellSet.from_crops(np.ones((2, 8, 8)), image_id="a")
        >>> len(CellSet.concat([a, a]))
        4
        """
        cellsets = list(cellsets)
        if not cellsets:
            raise ValueError("concat needs at least one CellSet")
        for c in cellsets:
            if not isinstance(c, CellSet):
                raise TypeError(f"concat expects CellSet objects, got {type(c).__name__}")
        kinds = {type(c) for c in cellsets}
        if kinds != {cls} and any(k is not CellSet for k in kinds):  # cells with compartments
            return next(k for k in kinds if k is not CellSet).concat(cellsets)
        names = cellsets[0].channel_names
        for c in cellsets[1:]:
            if c.channel_names != names:
                raise ValueError(
                    f"cannot concatenate CellSets with channels {names!r} and {c.channel_names!r}"
                )
        return cls(
            np.concatenate([c._values for c in cellsets], axis=1),
            np.concatenate([c._mask for c in cellsets]),
            np.concatenate([c._shapes for c in cellsets]),
            _concat_metadata([c.metadata for c in cellsets]),
            names,
            np.concatenate([c._origins for c in cellsets]),
            _concat_fields([c._fields for c in cellsets]),
        )

    @classmethod
    def _from_lists(cls, crops, masks, frame, channel_names, origins, fields=None):
        shapes = np.array([m.shape for m in masks], dtype=np.intp).reshape(-1, 2)
        values = np.concatenate([c.reshape(c.shape[0], -1) for c in crops], axis=1)
        mask = np.concatenate([m.ravel() for m in masks])
        return cls(values, mask, shapes, frame, channel_names, origins, fields)

    @classmethod
    def _empty(cls, channel_names, image_id=None, metadata=None):
        frame = _metadata_frame(
            0, image_id, np.empty((0, 4), np.intp), np.empty((0, 2)), np.empty(0, bool),
            np.empty(0, np.int64), None,
        )
        for key in dict(metadata or {}):
            frame[_metadata_column(key)] = pd.Series(dtype=object)
        return cls(
            np.empty((len(channel_names), 0), np.float32), np.empty(0, bool),
            np.empty((0, 2), np.intp), frame, channel_names,
        )

    # ------------------------------------------------------------------ container protocol
    def __len__(self):
        return len(self._shapes)

    def __getitem__(self, index):
        if isinstance(index, tuple) and len(index) == 2 and index[1] is Ellipsis:
            index = index[0]  # scikit-learn's _safe_indexing writes X[idx, ...]
        if isinstance(index, (int, np.integer)):
            index = [index]
        if isinstance(index, slice):
            index = np.arange(len(self))[index]
        index = np.asarray(index)
        if index.dtype == bool:
            if index.shape != (len(self),):
                raise IndexError(
                    f"boolean index has shape {index.shape} but the CellSet has {len(self)} cells"
                )
            index = np.flatnonzero(index)
        if index.size and not np.issubdtype(index.dtype, np.integer):
            raise IndexError(f"CellSet indices must be integers or booleans, got {index.dtype}")
        index = index.astype(np.intp).ravel()
        if index.size and (index.max() >= len(self) or index.min() < -len(self)):
            raise IndexError(f"index out of range for a CellSet of {len(self)} cells")
        index = np.where(index < 0, index + len(self), index)
        return self._take(index)

    def _take(self, index):
        # block copies per cell (memcpy speed) beat a per-pixel fancy gather
        if len(index) and np.all(np.diff(index) == 1):
            pixels = slice(self._starts[index[0]], self._starts[index[-1] + 1])
            values, mask = self._values[:, pixels], self._mask[pixels]
        elif len(index):
            blocks = [slice(self._starts[i], self._starts[i + 1]) for i in index]
            values = np.concatenate([self._values[:, b] for b in blocks], axis=1)
            mask = np.concatenate([self._mask[b] for b in blocks])
        else:
            values, mask = self._values[:, :0], self._mask[:0]
        return type(self)(
            values,
            mask,
            self._shapes[index],
            self.metadata.iloc[index],
            self.channel_names,
            self._origins[index],
            _take_fields(self._fields, index),
        )

    def __repr__(self):
        n_images = self.metadata["Metadata_ImageID"].nunique() if len(self) else 0
        return (
            f"CellSet({len(self)} cells from {n_images} image(s), "
            f"channels={list(self.channel_names)})"
        )

    # ------------------------------------------------------------------ accessors
    @property
    def n_channels(self):
        """Number of channels."""
        return len(self.channel_names)

    @property
    def shape(self):
        """``(n_cells,)``, so code that inspects ``X.shape[0]`` works."""
        return (len(self),)

    def groups(self, column="image"):
        """Per-cell values of a metadata column, for ``groups=`` in grouped CV.

        Parameters
        ----------
        column : str, default="image"
            ``"image"`` (``Metadata_ImageID``), ``"object"``, or any metadata
            column, with or without its ``Metadata_`` prefix.

        Returns
        -------
        ndarray of shape (n_cells,)

        Examples
        --------
        >>> import numpy as np
        >>> from featcell import CellSet
        >>> cells = CellSet.from_crops(np.ones((2, 8, 8)), image_id=["a", "b"])
        >>> cells.groups("image").tolist()
        ['a', 'b']
        """
        name = _GROUP_ALIASES.get(column, column)
        if name not in self.metadata and f"Metadata_{name}" in self.metadata:
            name = f"Metadata_{name}"
        if name not in self.metadata:
            raise KeyError(
                f"no metadata column {column!r}; available: {list(self.metadata.columns)}"
            )
        return self.metadata[name].to_numpy()

    def crop(self, i):
        """Crop of cell ``i``: float32 array (C, h, w), context margin included."""
        i = self._position(i)
        h, w = self._shapes[i]
        return self._values[:, self._starts[i] : self._starts[i + 1]].reshape(-1, h, w)

    def mask(self, i):
        """Mask of cell ``i`` in crop coordinates: bool array (h, w)."""
        i = self._position(i)
        h, w = self._shapes[i]
        return self._mask[self._starts[i] : self._starts[i + 1]].reshape(h, w)

    def _position(self, i):
        """Cell ``i`` as a position 0 .. N-1 (``-1``: the last cell, as in a sequence)."""
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"cell index must be an integer, got {i!r}")
        if not -len(self) <= i < len(self):
            raise IndexError(f"cell {i} is out of range for a CellSet of {len(self)} cells")
        return int(i) % len(self)

    def iter_crops(self):
        """Yield ``(crop, mask)`` for every cell, in order."""
        for i in range(len(self)):
            yield self.crop(i), self.mask(i)

    @property
    def index(self):
        """Cell ids ``"<image id>:<object number>"``, a :class:`pandas.Index`.

        Feature tables from ``set_output(transform="pandas")`` carry it, so
        tables of the same cells join by id, not by position.

        Examples
        --------
        >>> import numpy as np
        >>> from featcell import CellSet
        >>> CellSet.from_crops(np.ones((2, 8, 8)), image_id="a").index.tolist()
        ['a:1', 'a:2']
        """
        image = self.metadata["Metadata_ImageID"].astype(str)
        number = self.metadata["Metadata_ObjectNumber"].astype(str)
        return pd.Index((image + ":" + number).to_numpy(dtype=object), name="cell_id")

    @property
    def crop_shapes(self):
        """(N, 2) array of crop shapes ``(h, w)``."""
        return self._shapes.copy()

    def fields(self):
        """The whole images the cells were cut from, where they are known.

        Cells built by :meth:`from_labels` or :meth:`from_boxes` keep their
        image (all channels); cells from :meth:`from_crops` have none.

        Returns
        -------
        images : tuple of (C, H, W) ndarrays of float32
            The images (only those of these cells).
        index : (N,) ndarray of intp
            The image of every cell in ``images``, -1 for a cell without one.
            Crop ``i`` starts at ``crop_origins[i]`` in its image.

        Examples
        --------
        >>> import numpy as np
        >>> from featcell import CellSet
        >>> labels = np.zeros((16, 16), dtype=int); labels[4:8, 4:8] = 1; labels[9:12, 2:5] = 2
        >>> cells = CellSet.from_labels(np.ones((16, 16)), labels)
        >>> images, index = cells.fields()
        >>> [image.shape for image in images], index.tolist()
        ([(1, 16, 16)], [0, 0])
        """
        return self._fields[0], self._fields[1].copy()

    def _without_fields(self):
        """These cells without the whole images they were cut from: crops only (a
        command keeps what outlives the image it read; the buffers are shared)."""
        out = copy.copy(self)
        out._fields = ((), np.full(len(self), -1, np.intp))
        return out

    @property
    def crop_origins(self):
        """(N, 2) array of crop top-left corners in image coordinates."""
        return self._origins.copy()

    def flat(self):
        """All crop pixels as flat arrays, for vectorised per-object measurement.

        Returns
        -------
        FlatCells
        """
        return FlatCells(self._values, self._mask, self._shapes)

    def mosaic(self, gap=1):
        """Pack all crops into one canvas with a label image, for whole-image algorithms.

        Crops are placed on shelves, ``gap`` background pixels apart and from
        the canvas rim (:func:`featcell.features._pixels.shelf_pack`), so any
        labelled-image routine (``regionprops``, ``ndimage``, mahotas) measures
        every cell in one call.

        Parameters
        ----------
        gap : int, default=1
            Background pixels between neighbouring crops.

        Returns
        -------
        image : (C, H, W) ndarray of float32
            Crop intensities (0 between crops).
        labels : (H, W) ndarray of int32
            Cell ``i`` has label ``i + 1`` (only its mask pixels).
        offsets : (N, 2) ndarray of intp
            Top-left corner of every crop in the canvas.
        """
        n = len(self)
        if n == 0:
            return (
                np.zeros((self.n_channels, 0, 0), np.float32),
                np.zeros((0, 0), np.int32),
                np.empty((0, 2), np.intp),
            )
        from .features._pixels import shelf_pack

        offsets, (height, width) = shelf_pack(self._shapes[:, 0], self._shapes[:, 1], gap)
        image = np.zeros((self.n_channels, height, width), np.float32)
        labels = np.zeros((height, width), np.int32)
        for i, (y, x) in enumerate(offsets):  # one block copy per cell
            hh, ww = self._shapes[i]
            image[:, y : y + hh, x : x + ww] = self.crop(i)
            labels[y : y + hh, x : x + ww][self.mask(i)] = i + 1
        return image, labels, offsets


def _check_margin(margin):
    if not isinstance(margin, (int, np.integer)) or margin < 0:
        raise ValueError(f"margin must be a non-negative integer, got {margin!r}")
    return int(margin)


def _own(stack, image):
    """``stack``, copied if it shares memory with the caller's ``image``."""
    shared = isinstance(image, np.ndarray) and np.may_share_memory(stack, image)
    return stack.copy() if shared else stack


def _concat_fields(fields):
    """The fields of concatenated CellSets: their images one after another, indices shifted;
    an image that several of them hold (the same array: parts of one CellSet) is kept once."""
    images, index, seen = [], [], {}
    for own, where in fields:
        new = []
        for image in own:
            if id(image) not in seen:
                seen[id(image)] = len(images)
                images.append(image)
            new.append(seen[id(image)])
        new = np.asarray(new, np.intp)
        index.append(np.where(where >= 0, new[np.maximum(where, 0)] if len(new) else -1, -1))
    return tuple(images), np.concatenate(index)


def _take_fields(fields, index):
    """The fields of the cells ``index``: only their images, renumbered."""
    images, where = fields
    where = where[index]
    known = where >= 0
    used, renumbered = np.unique(where[known], return_inverse=True)
    where[known] = renumbered
    return tuple(images[i] for i in used), where


def _stacked_planes(image, channel_axis):
    """``(image, channel_axis)``: a list of (H, W) planes stacked channels first, checked to
    share one shape; an array as it is."""
    if not isinstance(image, (list, tuple)):
        return image, channel_axis
    planes = [np.asarray(plane) for plane in image]
    if len({plane.shape for plane in planes}) > 1:
        raise ValueError(f"image is a list of planes of different shapes "
                         f"{[plane.shape for plane in planes]}; expected one shape")
    return np.stack(planes, axis=0), 0


def _concat_metadata(frames):
    """The metadata tables one after the other. Tables without rows (images without cells)
    add only their columns: pandas would stop ignoring them when it types the columns (a
    FutureWarning), and their columns' dtypes are a guess."""
    kept = [frame for frame in frames if len(frame)] or frames[:1]
    out = pd.concat(kept, ignore_index=True)
    missing = [c for frame in frames for c in frame.columns if c not in out.columns]
    return out.reindex(columns=[*out.columns, *dict.fromkeys(missing)]) if missing else out


def _compact_labels(labels):
    """A label image whose ids are at most its number of pixels, and the original ids.

    Tables with one row per id up to the largest (bounding boxes, overlaps) must
    follow the image, not the ids: ids far above the number of pixels (a 16 x 16
    image with one object numbered 2**26) are numbered 1, 2, ... in order.
    Returns ``(compact, present)``: ``compact`` holds ids k, ``present[k]`` the
    original id of k (``present`` is None when the ids were kept).
    """
    labels = labels.astype(np.int64) if labels.dtype == np.uint64 else labels  # ids < 2**63
    if not labels.size or labels.max() <= labels.size:
        return labels, None
    present, compact = np.unique(labels, return_inverse=True)
    if present[0] != 0:  # no background pixel: 0 stays unused
        present, compact = np.r_[0, present], compact + 1
    return compact.reshape(labels.shape).astype(np.intp), present.astype(np.int64)


def _object_boxes(labels):
    """Ids and bounding boxes of a label image's objects (``label_boxes``), by
    :func:`_compact_labels`' ids so that memory follows the image."""
    from .features._kernels.objects import label_boxes

    compact, present = _compact_labels(labels)
    ids, boxes = label_boxes(compact)
    return (ids, boxes) if present is None else (present[ids], boxes)


# the objects' windows (bounding box and margin) may cover this many times the image
_MAX_WINDOW_COVER = 32


def _check_window_area(origins, ends, shape, what):
    """Refuse objects whose windows together cover far more than the image: each window
    is copied, so a small annotation file (thousands of boxes over the whole image, or
    objects of two distant pixels) would otherwise take gigabytes."""
    area = int(np.prod(np.asarray(ends) - np.asarray(origins), axis=1).sum())
    image = int(shape[0]) * int(shape[1])
    if area > _MAX_WINDOW_COVER * max(image, 4096):
        raise ValueError(
            f"{what}: {len(origins)} objects whose bounding boxes (with the margin) cover "
            f"{area:,} pixels, {area / image:.0f} times the {shape[0]} x {shape[1]} image "
            f"(at most {_MAX_WINDOW_COVER}); expected compact objects - is each object one "
            "connected region, and are the boxes right?"
        )


def _gather_windows(stack, labels, ids, origins, ends):
    """Cut (C, h, w) windows, object masks and centroids for every id, into flat buffers."""
    from .features._kernels.objects import gather_windows

    shapes = ends - origins
    starts = np.concatenate([[0], np.cumsum(shapes[:, 0] * shapes[:, 1])])
    values = np.empty((stack.shape[0], starts[-1]), np.float32)
    mask = np.empty(starts[-1], bool)
    centroid = np.empty((len(ids), 2))
    ids = np.asarray(ids, labels.dtype)
    gather_windows(stack, labels, ids, origins, ends, starts, values, mask.view(np.uint8), centroid)
    return values, mask, shapes, centroid
