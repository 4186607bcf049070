"""Cells with several compartments (nuclei, cells, cytoplasm), as CellProfiler measures them.

A Cell Painting pipeline in CellProfiler segments nuclei (IdentifyPrimaryObjects),
grows cells from them (IdentifySecondaryObjects), derives the cytoplasm as the cell
minus its nucleus (IdentifyTertiaryObjects), relates each nucleus to its cell
(RelateObjects), and measures every compartment with every module. pycytominer then
merges the per-compartment tables into one row per cell with ``Nuclei_*``, ``Cells_*``
and ``Cytoplasm_*`` columns.

:func:`cells_from_compartments` (also :meth:`featcell.CellSet.from_compartments`)
builds that row directly: one sample per cell, holding the crop around the cell and
one mask per compartment. Every feature transformer measures the compartment named
by its ``compartment`` parameter, and :class:`~featcell.CellFeatures` measures every
compartment when it has none, so the existing families need no change.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from .cells import (
    CellSet,
    _as_float,
    _channels_first,
    _check_channel_names,
    _check_labels,
    _check_margin,
    _compact_labels,
    _gather_windows,
    _metadata_frame,
    _own,
    _stacked_planes,
)

__all__ = ["CompartmentCellSet", "cells_from_compartments", "relate_objects"]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
CYTOPLASM = "Cytoplasm"


class CompartmentCellSet(CellSet):
    """A :class:`~featcell.CellSet` whose cells have several compartments.

    It behaves as a CellSet of the outer compartment (usually ``"Cells"``:
    ``mask(i)``, :class:`~featcell.CNNEmbedding` and a transformer without
    ``compartment`` see the whole cell), and :meth:`compartment` gives the
    same cells with the mask of another compartment. Build it with
    :func:`cells_from_compartments`; indexing and
    :meth:`~featcell.CellSet.concat` keep the compartments.

    Attributes
    ----------
    compartment_names : tuple of str
        The compartments, e.g. ``("Nuclei", "Cells", "Cytoplasm")``.
    parent : str
        The outer compartment: one sample per object of it.
    """

    def __init__(self, values, mask, shapes, metadata, channel_names, origins=None, fields=None,
                 *, compartments=None, parent=None):
        super().__init__(values, mask, shapes, metadata, channel_names, origins, fields)
        # one 0/1 pseudo-channel per compartment, laid out as the crops: indexing and
        # concatenation of the base class then apply to the masks unchanged
        self._compartments = compartments
        self.parent = parent

    @property
    def compartment_names(self):
        """The compartments of every cell, in output order."""
        return tuple(self._compartments.channel_names)

    def compartment(self, name):
        """The same cells, masked to compartment ``name``.

        Parameters
        ----------
        name : str
            One of :attr:`compartment_names`.

        Returns
        -------
        CellSet
            Same crops, metadata and order; ``mask(i)`` is the compartment.
        """
        if name not in self.compartment_names:
            raise ValueError(
                f"compartment {name!r} is not one of the cells' compartments "
                f"{list(self.compartment_names)}"
            )
        k = self.compartment_names.index(name)
        metadata = self.metadata
        cut = self._compartments.metadata
        if name in cut.columns and "Metadata_TouchesBorder" in metadata.columns:
            # the compartment's own contact with the image border (its edge features)
            metadata = metadata.assign(Metadata_TouchesBorder=cut[name].to_numpy(bool))
        return CellSet(self._values, self._compartments._values[k] > 0, self._shapes,
                       metadata, self.channel_names, self._origins, self._fields)

    def _take(self, index):
        taken = super()._take(index)
        taken._compartments = self._compartments._take(index)
        taken.parent = self.parent
        return taken

    @classmethod
    def concat(cls, cellsets):
        """Concatenate cells with the same channels and compartments.

        Parameters
        ----------
        cellsets : sequence of CompartmentCellSet

        Returns
        -------
        CompartmentCellSet
        """
        cellsets = list(cellsets)
        for c in cellsets:
            if not isinstance(c, CompartmentCellSet):
                raise TypeError(
                    "cannot concatenate cells with compartments and cells without "
                    f"(got {type(c).__name__})"
                )
        names = {(c.compartment_names, c.parent) for c in cellsets}
        if len(names) > 1:
            raise ValueError(f"cannot concatenate cells with different compartments: {names}")
        out = super().concat(cellsets)
        out._compartments = CellSet.concat([c._compartments for c in cellsets])
        out.parent = cellsets[0].parent
        return out

    def __repr__(self):
        return f"{super().__repr__()[:-1]}, compartments={list(self.compartment_names)})"


def select_compartment(cells, name):
    """The cells masked to compartment ``name`` when they have compartments, else ``cells``."""
    names = getattr(cells, "compartment_names", None)
    if not names or name is None:
        return cells
    return cells.compartment(name)


def relate_objects(parents, children):
    """Parent of every child object: the parent it overlaps most (CellProfiler RelateObjects).

    Parameters
    ----------
    parents, children : (H, W) ndarray of int
        Label images (0 = background), e.g. cells and nuclei.

    Returns
    -------
    parent_of : (children.max() + 1,) ndarray of int64
        ``parent_of[c]`` is the parent of child ``c``, 0 when it overlaps none
        (ties go to the lower parent id, as ``numpy.argmax`` does in CellProfiler).
    overlap : (children.max() + 1,) ndarray of int64
        Pixels child ``c`` shares with its parent.

    Examples
    --------
    >>> import numpy as np
    >>> from featcell.compartments import relate_objects
    >>> cells = np.array([[1, 1, 2, 2]]); nuclei = np.array([[0, 5, 5, 5]])
    >>> relate_objects(cells, nuclei)[0][5]
    np.int64(2)
    """
    parents = np.asarray(parents, np.int64)
    children = np.asarray(children, np.int64)
    n_children = int(children.max(initial=0)) + 1
    parent_of = np.zeros(n_children, np.int64)
    overlap = np.zeros(n_children, np.int64)
    both = (parents > 0) & (children > 0)
    if not both.any():
        return parent_of, overlap
    stride = int(parents.max()) + 1
    pairs, counts = np.unique(children[both] * stride + parents[both], return_counts=True)
    child, parent = np.divmod(pairs, stride)
    # per child: most pixels first, then the lowest parent id
    order = np.lexsort((parent, -counts, child))
    first = order[np.r_[True, child[order][1:] != child[order][:-1]]]
    parent_of[child[first]] = parent[first]
    overlap[child[first]] = counts[first]
    return parent_of, overlap


def _outline(labels):
    """Object pixels with an 8-neighbour of another label, or on the image edge (centrosome)."""
    padded = np.pad(labels, 1, mode="constant", constant_values=-1)
    centre = padded[1:-1, 1:-1]
    edge = np.zeros(labels.shape, bool)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if di or dj:
                edge |= padded[1 + di : padded.shape[0] - 1 + di,
                               1 + dj : padded.shape[1] - 1 + dj] != centre
    return edge & (labels > 0)


def cytoplasm_labels(cells, nuclei, *, shrink=True):
    """The cytoplasm: every cell minus the nuclei (CellProfiler IdentifyTertiaryObjects).

    Parameters
    ----------
    cells, nuclei : (H, W) ndarray of int
        Label images of the larger and the smaller objects.
    shrink : bool, default=True
        Keep the nuclei's outline pixels in the cytoplasm, as CellProfiler
        does by default ("shrink smaller object prior to subtraction"), so a
        cell no larger than its nucleus keeps a cytoplasm.

    Returns
    -------
    cytoplasm : (H, W) ndarray of int32
        Labelled with the id of the cell each pixel belongs to.

    Examples
    --------
    >>> import numpy as np
    >>> from featcell.compartments import cytoplasm_labels
    >>> cells = np.zeros((7, 7), int); cells[1:6, 1:6] = 3
    >>> nuclei = np.zeros((7, 7), int); nuclei[2:5, 2:5] = 1
    >>> int((cytoplasm_labels(cells, nuclei) == 3).sum()), int((cytoplasm_labels(
    ...     cells, nuclei, shrink=False) == 3).sum())
    (24, 16)
    """
    cells = np.asarray(cells)
    nuclei = np.asarray(nuclei)
    removed = (nuclei > 0) & ~_outline(nuclei) if shrink else nuclei > 0
    return np.where(removed, 0, cells).astype(np.int32)


def _boxes(slices):
    """``(n, 4)`` boxes ``(min row, min col, max row, max col)`` of ``find_objects`` slices."""
    return np.array([[s[0].start, s[1].start, s[0].stop, s[1].stop] for s in slices],
                    dtype=np.intp).reshape(-1, 4)


def _check_label_sets(labels):
    if not isinstance(labels, dict) or not labels:
        raise TypeError(
            "labels must be a dict of compartment name -> label image, e.g. "
            f"{{'Nuclei': nuclei, 'Cells': cells}}; got {type(labels).__name__}"
        )
    checked = {}
    for name, image in labels.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(
                f"compartment name {name!r} is not valid: use letters and digits only, "
                "starting with a letter, e.g. 'Nuclei'"
            )
        checked[name] = _check_labels(image)
    shapes = {name: image.shape for name, image in checked.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"the label images have different shapes: {shapes}")
    return checked


def cells_from_compartments(
    image,
    labels,
    channels=None,
    image_id=None,
    *,
    parent=None,
    cytoplasm=True,
    channel_axis=-1,
    margin=8,
    rescale="dtype",
    exclude_border=False,
    metadata=None,
):
    """Cells of one image measured in several compartments, one sample per cell.

    Parameters
    ----------
    image : (H, W) or (H, W, C) ndarray, or list of (H, W) ndarrays
        Intensity image, as in :meth:`featcell.CellSet.from_labels`.
    labels : dict of str to (H, W) ndarray of int
        One label image per compartment, e.g. ``{"Nuclei": nuclei, "Cells":
        cells}`` (from Cellpose, StarDist, CellProfiler, or
        :func:`featcell.segment` and :func:`featcell.segment_cells`). The two
        need not share ids: every nucleus is related to the cell it overlaps
        most.
    channels, image_id, channel_axis, margin, rescale, exclude_border, metadata
        As in :meth:`featcell.CellSet.from_labels`; ``exclude_border`` and
        ``Metadata_TouchesBorder`` look at the parent objects (each
        compartment's edge and radial features see whether the border cuts that
        compartment itself, e.g. a nucleus reaching it in a cell that does not).
    parent : str, optional
        The compartment with one sample per object. Default ``"Cells"`` when
        given, else the first label set.
    cytoplasm : bool, default=True
        With a parent and at least one other label set, add a ``"Cytoplasm"``
        compartment: the parent minus the first other set
        (:func:`cytoplasm_labels`, CellProfiler's IdentifyTertiaryObjects).

    Returns
    -------
    CompartmentCellSet
        One cell per parent object that contains an object of every other
        set (and a non-empty cytoplasm), in increasing id order, as
        pycytominer's merge of CellProfiler's tables keeps them. Each other
        compartment holds the child object that overlaps the cell most. The
        metadata gains CellProfiler's relationship columns:
        ``Metadata_<Child>_Number_Object_Number`` (the child's id),
        ``Metadata_<Child>_Parent_<Parent>``,
        ``Metadata_<Parent>_Children_<Child>_Count`` (children related to the
        cell, all of them) and ``Metadata_<Compartment>_Location_Center_X/Y``.

    See Also
    --------
    featcell.segment_cells : cells grown from nuclei, when only nuclei are given.

    Examples
    --------
    >>> import numpy as np
    >>> from featcell import CellSet, Morphology
    >>> cells = np.zeros((30, 30), np.int32); cells[2:14, 2:14] = 1; cells[16:28, 10:26] = 2
    >>> nuclei = np.zeros((30, 30), np.int32); nuclei[5:10, 5:10] = 7; nuclei[19:24, 15:21] = 3
    >>> image = np.random.default_rng(0).random((30, 30))
    >>> X = CellSet.from_compartments(image, {"Nuclei": nuclei, "Cells": cells}, ["DNA"])
    >>> X.compartment_names, X.metadata["Metadata_Nuclei_Number_Object_Number"].tolist()
    (('Nuclei', 'Cells', 'Cytoplasm'), [7, 3])
    >>> Morphology(compartment="Nuclei").fit_transform(X)[:, 0].tolist()  # nuclear areas
    [25.0, 30.0]
    """
    labels = _check_label_sets(labels)
    if parent is None:
        parent = "Cells" if "Cells" in labels else next(iter(labels))
    if parent not in labels:
        raise ValueError(f"parent {parent!r} is not one of the label sets {list(labels)}")
    children = [name for name in labels if name != parent]
    derive = bool(cytoplasm) and bool(children) and CYTOPLASM not in labels
    order = [*labels, CYTOPLASM] if derive else list(labels)
    # ids far above the number of pixels are numbered 1, 2, ... so that the tables by id
    # follow the image; the metadata gives the original ids
    present = {}
    for name in list(labels):
        labels[name], present[name] = _compact_labels(labels[name])

    def original(name, compact_ids):
        return compact_ids if present[name] is None else present[name][compact_ids]

    outer = labels[parent]
    image, channel_axis = _stacked_planes(image, channel_axis)
    stack = _as_float(_channels_first(image, outer.shape, channel_axis), rescale, "image")
    channel_names = _check_channel_names(channels, stack.shape[0])
    margin = _check_margin(margin)

    slices = ndi.find_objects(outer)
    ids = np.array([i + 1 for i, s in enumerate(slices) if s is not None], dtype=np.int64)
    boxes = _boxes(s for s in slices if s is not None)
    H, W = outer.shape

    def touching(boxes):
        return (boxes[:, 0] == 0) | (boxes[:, 1] == 0) | (boxes[:, 2] == H) | (boxes[:, 3] == W)

    touches = touching(boxes)
    keep = ~touches if exclude_border else np.ones(len(ids), bool)

    # the main child of every parent: of the children related to it, the one it overlaps most
    main, counts, child_slices = {}, {}, {}
    for name in children:
        parent_of, overlap = relate_objects(outer, labels[name])
        related = np.flatnonzero(parent_of)
        counts[name] = np.bincount(parent_of[related], minlength=outer.max() + 1)[ids]
        best = np.zeros(int(outer.max()) + 1, np.int64)
        if related.size:
            owner = parent_of[related]
            rank = np.lexsort((related, -overlap[related], owner))
            first = rank[np.r_[True, owner[rank][1:] != owner[rank][:-1]]]
            best[owner[first]] = related[first]
        main[name] = best[ids]
        keep &= main[name] > 0
        child_slices[name] = ndi.find_objects(labels[name])
    derived = cytoplasm_labels(outer, labels[children[0]]) if derive else None
    if derive:
        keep &= np.bincount(derived.ravel(), minlength=outer.max() + 1)[ids] > 0

    ids, boxes, touches = ids[keep], boxes[keep], touches[keep]
    main = {name: value[keep] for name, value in main.items()}
    counts = {name: value[keep] for name, value in counts.items()}
    if ids.size == 0:
        return _empty(channel_names, image_id, metadata, order, parent, children, derive)

    # the crop holds the cell and its main children (which may reach out of it); each
    # compartment is cut by the image border on its own (a nucleus may reach it, its cell not)
    window = boxes.copy()
    cut = {parent: touches}
    for name in children:
        child_boxes = _boxes(child_slices[name][child - 1] for child in main[name])
        window[:, :2] = np.minimum(window[:, :2], child_boxes[:, :2])
        window[:, 2:] = np.maximum(window[:, 2:], child_boxes[:, 2:])
        cut[name] = touching(child_boxes)
    origins = np.maximum(window[:, :2] - margin, 0)
    ends = np.minimum(window[:, 2:] + margin, [H, W])
    values, mask, shapes, centroid = _gather_windows(stack, outer, ids, origins, ends)
    frame = _metadata_frame(len(ids), image_id, boxes, centroid, touches, original(parent, ids),
                            metadata)

    plane = stack[:1]  # masks and centroids need no intensities: gather the smallest stack
    masks = {parent: mask}
    for name in children:
        _, masks[name], _, where = _gather_windows(plane, labels[name], main[name], origins, ends)
        frame[f"Metadata_{name}_Number_Object_Number"] = original(name, main[name])
        frame[f"Metadata_{name}_Parent_{parent}"] = original(parent, ids)
        frame[f"Metadata_{parent}_Children_{name}_Count"] = counts[name]
        frame[f"Metadata_{name}_Location_Center_Y"] = where[:, 0]
        frame[f"Metadata_{name}_Location_Center_X"] = where[:, 1]
    if derive:
        _, masks[CYTOPLASM], _, where = _gather_windows(plane, derived, ids, origins, ends)
        frame[f"Metadata_{CYTOPLASM}_Parent_{parent}"] = original(parent, ids)
        frame[f"Metadata_{CYTOPLASM}_Parent_{children[0]}"] = original(children[0],
                                                                        main[children[0]])
        rim = np.concatenate([derived[0], derived[-1], derived[:, 0], derived[:, -1]])
        cut[CYTOPLASM] = np.isin(ids, rim)  # the cytoplasms with pixels on the image's rim
        frame[f"Metadata_{CYTOPLASM}_Location_Center_Y"] = where[:, 0]
        frame[f"Metadata_{CYTOPLASM}_Location_Center_X"] = where[:, 1]
    # the store's metadata: per compartment, whether the image border cuts it
    store = CellSet(np.stack([masks[name] for name in order]).astype(np.float32), mask,
                    shapes, pd.DataFrame({name: cut[name] for name in order}), order, origins)
    fields = (_own(stack, image),), np.zeros(len(ids), np.intp)  # granularity's whole field
    return CompartmentCellSet(values, mask, shapes, frame, channel_names, origins, fields,
                              compartments=store, parent=parent)


def _empty(channel_names, image_id, metadata, order, parent, children, derive):
    base = CellSet._empty(channel_names, image_id, metadata)
    frame = base.metadata
    for name in children:
        for column in (f"{name}_Number_Object_Number", f"{name}_Parent_{parent}",
                       f"{parent}_Children_{name}_Count"):
            frame[f"Metadata_{column}"] = pd.Series(dtype=np.int64)
        for axis in "YX":
            frame[f"Metadata_{name}_Location_Center_{axis}"] = pd.Series(dtype=np.float64)
    if derive:
        for column in (f"Parent_{parent}", f"Parent_{children[0]}"):
            frame[f"Metadata_{CYTOPLASM}_{column}"] = pd.Series(dtype=np.int64)
        for axis in "YX":
            frame[f"Metadata_{CYTOPLASM}_Location_Center_{axis}"] = pd.Series(dtype=np.float64)
    store = CellSet(np.empty((len(order), 0), np.float32), base._mask, base._shapes,
                    pd.DataFrame(index=range(0)), order)
    return CompartmentCellSet(base._values, base._mask, base._shapes, frame, channel_names,
                              compartments=store, parent=parent)
