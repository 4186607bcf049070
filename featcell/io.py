"""Reading microscopy files: images, label images, Pascal VOC boxes, folders of them.

Images come in as numpy arrays in their own dtype (so that :class:`CellSet`
can rescale by the dtype range, as CellProfiler does). TIFF is read with
tifffile (multi-page and OME-TIFF included); PNG, JPEG and BMP with
scikit-image's imageio plugin.
"""

from __future__ import annotations

import glob
import hashlib
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .cells import CellSet

__all__ = [
    "file_sha256",
    "find_label_file",
    "iter_cells",
    "list_images",
    "metadata_from_filename",
    "read_cells",
    "read_image",
    "read_labels",
    "read_voc",
]

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")
# suffixes that label files commonly carry: Cellpose, StarDist, CellProfiler, DSB-style folders
_LABEL_SUFFIXES = ("", "_labels", "_label", "_masks", "_mask", "_cp_masks", "_seg", "_objects")


def read_image(path, *, as_gray=False, channel_axis=None):
    """Read one microscopy image into an array in its stored dtype.

    Parameters
    ----------
    path : str or path-like
        A TIFF (incl. multi-page/OME), PNG, JPEG or BMP file.
    as_gray : bool, default=False
        Average colour channels to one grey plane (keeping the dtype range);
        an alpha channel is dropped first.
    channel_axis : int, optional
        For multi-page TIFFs, the axis that holds channels; it is moved last so
        the result is ``(H, W, C)``. By default a 3-D TIFF with at most 8 pages
        is taken as channels-first and moved last.

    Returns
    -------
    image : (H, W) or (H, W, C) ndarray

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file cannot be decoded as an image.

    Examples
    --------
    >>> import numpy as np, tifffile, tempfile, os
    >>> from featcell.io import read_image
    >>> path = os.path.join(tempfile.mkdtemp(), "a.tif")
    >>> tifffile.imwrite(path, np.zeros((2, 16, 16), np.uint16))
    >>> read_image(path).shape
    (16, 16, 2)
    """
    path = _check_path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            image = tifffile.imread(path)
            image = np.squeeze(image)
            if image.ndim == 3:
                axis = channel_axis if channel_axis is not None else (0 if image.shape[0] <= 8 else -1)
                image = np.moveaxis(image, axis, -1)
        else:
            from skimage import io as skio

            image = skio.imread(path)
    except (OSError, ValueError, SyntaxError, RuntimeError) as exc:  # decoder errors vary
        raise ValueError(f"could not read image {str(path)!r}: {exc}") from exc
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 4 and path.suffix.lower() in (".png", ".jpg", ".jpeg"):
        image = image[..., :3]  # alpha carries no signal in microscopy PNGs
    if image.ndim not in (2, 3):
        raise ValueError(
            f"image {str(path)!r} has shape {image.shape}; expected (H, W) or (H, W, C). "
            "Split z-stacks and time series into 2-D planes first."
        )
    if as_gray and image.ndim == 3:
        gray = image.mean(axis=-1)
        image = gray.astype(image.dtype) if np.issubdtype(image.dtype, np.integer) else gray
    return image


def read_labels(path):
    """Read an instance label image (0 = background) as an integer array.

    Colour-coded label PNGs (one RGB colour per object) are converted to ids.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    labels : (H, W) ndarray of int32

    Examples
    --------
    >>> import numpy as np, tifffile, tempfile, os
    >>> from featcell.io import read_labels
    >>> path = os.path.join(tempfile.mkdtemp(), "l.tif")
    >>> tifffile.imwrite(path, np.eye(4, dtype=np.uint16) * 3)
    >>> read_labels(path).max()
    np.int32(3)
    """
    labels = read_image(path)
    if labels.ndim == 3:
        if np.all(labels == labels[..., :1]):
            labels = labels[..., 0]
        else:
            flat = labels.reshape(-1, labels.shape[-1])
            _, ids = np.unique(flat, axis=0, return_inverse=True)
            background = np.all(flat == 0, axis=1)
            ids = ids.ravel() + 1
            if background.any():
                ids[background] = 0
                ids = np.unique(ids, return_inverse=True)[1].ravel()
            labels = ids.reshape(labels.shape[:2])
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"label image {str(path)!r} has dtype {labels.dtype}; expected integer object ids"
        )
    return labels.astype(np.int32)


def read_voc(path):
    """Read a Pascal VOC XML annotation.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    boxes : (N, 4) ndarray of float
        ``xmin, ymin, xmax, ymax`` in 0-based pixel coordinates with exclusive
        ends (VOC stores 1-based inclusive pixel indices; this converts).
    names : list of str
        The ``<name>`` of each object, in file order.
    filename : str or None
        The image file named in the annotation.

    Examples
    --------
    >>> import tempfile, os
    >>> from featcell.io import read_voc
    >>> path = os.path.join(tempfile.mkdtemp(), "a.xml")
    >>> _ = open(path, "w").write("<annotation><filename>a.png</filename><object><name>Dead"
    ...     "</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>4</xmax><ymax>5</ymax></bndbox>"
    ...     "</object></annotation>")
    >>> boxes, names, filename = read_voc(path)
    >>> boxes.tolist(), names
    ([[0.0, 0.0, 4.0, 5.0]], ['Dead'])
    """
    path = _check_path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ValueError(f"could not parse VOC annotation {str(path)!r}: {exc}") from exc
    boxes, names = [], []
    for k, obj in enumerate(root.iter("object")):
        box = obj.find("bndbox")
        try:
            xmin, ymin, xmax, ymax = (float(box.find(t).text) for t in ("xmin", "ymin", "xmax", "ymax"))
        except (AttributeError, TypeError, ValueError) as exc:
            raise ValueError(f"object {k} in {str(path)!r} has no valid <bndbox>") from exc
        boxes.append([xmin - 1, ymin - 1, xmax, ymax])
        names.append((obj.findtext("name") or "").strip())
    filename = root.findtext("filename")
    return np.asarray(boxes, dtype=float).reshape(-1, 4), names, filename


def list_images(source):
    """List image files from a folder, a glob pattern, a single file or a list of paths.

    Parameters
    ----------
    source : str, path-like or list of them
        A folder (its image files, sorted), a glob such as ``"plate1/*.tif"``,
        or an explicit list.

    Returns
    -------
    list of pathlib.Path

    Examples
    --------
    >>> from featcell.io import list_images
    >>> list_images([])
    []
    """
    if isinstance(source, (list, tuple)):
        return [Path(p) for p in source]
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    elif any(ch in str(source) for ch in "*?["):
        files = sorted(
            Path(p) for p in glob.glob(str(source)) if Path(p).suffix.lower() in IMAGE_SUFFIXES
        )
    elif source.exists():
        files = [source]
    else:
        raise FileNotFoundError(f"no such file, folder or pattern: {str(source)!r}")
    return files


def find_label_file(image_path, labels):
    """Find the label image that matches ``image_path`` in the folder ``labels``.

    The label file has the image's stem, optionally followed by one of
    ``_labels``, ``_label``, ``_masks``, ``_mask``, ``_cp_masks``, ``_seg``,
    ``_objects``, with any image extension.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    FileNotFoundError
        If no matching file exists.
    """
    image_path, labels = Path(image_path), Path(labels)
    for suffix in _LABEL_SUFFIXES:
        for ext in (image_path.suffix, *IMAGE_SUFFIXES):
            candidate = labels / f"{image_path.stem}{suffix}{ext}"
            if candidate.exists() and candidate != image_path:
                return candidate
    raise FileNotFoundError(
        f"no label image for {image_path.name!r} in {str(labels)!r} (looked for "
        f"{image_path.stem}{{{','.join(s for s in _LABEL_SUFFIXES if s)}}}.<ext>)"
    )


def iter_cells(images, labels=None, *, channels=None, as_gray=False, margin=8,
               exclude_border=False, segment_kwargs=None, metadata=None,
               save_labels=None) -> Iterator[CellSet]:
    """Stream one :class:`CellSet` per image file, never holding the whole set.

    Parameters
    ----------
    images : str, path-like or list
        Folder, glob or list of image files (see :func:`list_images`).
    labels : str, path-like or dict, optional
        Folder of matching label images (see :func:`find_label_file`), or a
        folder of Pascal VOC ``.xml`` files with the image's stem, giving
        boxes (the box names go to ``Metadata_Class``). Without labels, nuclei
        are segmented with :func:`featcell.segment`. A dict of compartment
        name to folder, such as ``{"Nuclei": "nuclei/", "Cells": "cells/"}``,
        measures every cell in each compartment
        (:meth:`CellSet.from_compartments`).
    channels : list of str, optional
        Channel names.
    as_gray : bool, default=False
        Read colour images as grey.
    margin, exclude_border
        As in :meth:`CellSet.from_labels`.
    segment_kwargs : dict, optional
        Parameters of :func:`featcell.segment` when ``labels`` is None.
    metadata : pandas.DataFrame or dict, optional
        Per-image metadata indexed by image file name, or one dict for all
        images (e.g. ``{"Plate": "P1"}``); copied to every cell as
        ``Metadata_<column>``. Plate, well and site also come from file names
        that plate readers write (:func:`metadata_from_filename`); given
        metadata wins.
    save_labels : str or path-like, optional
        Folder where the label image of every image that featcell segmented
        itself (no ``labels``, or VOC boxes) is written as
        ``<image stem>_labels.tif`` (int32, 0 = background, ids =
        ``Metadata_ObjectNumber``), for checking in napari or re-use with
        ``labels=``.

    Yields
    ------
    CellSet
        The cells of one image, ``Metadata_ImageID`` = the file name.
    """
    for path in list_images(images):
        yield _read_one(path, labels, channels=channels, as_gray=as_gray, margin=margin,
                        exclude_border=exclude_border, segment_kwargs=segment_kwargs,
                        metadata=metadata, save_labels=save_labels)


def read_cells(images, labels=None, **kwargs):
    """Read a folder of images (+ matching label images or VOC boxes) into one CellSet.

    Parameters
    ----------
    images, labels, **kwargs
        As in :func:`iter_cells`.

    Returns
    -------
    CellSet
        All cells of all images, ``Metadata_ImageID`` = the image file name.

    Examples
    --------
    >>> import numpy as np, tifffile, tempfile, os
    >>> from featcell import read_cells
    >>> root = tempfile.mkdtemp(); os.mkdir(f"{root}/img"); os.mkdir(f"{root}/lab")
    >>> lab = np.zeros((32, 32), np.uint16); lab[4:12, 4:12] = 1; lab[18:28, 18:28] = 2
    >>> tifffile.imwrite(f"{root}/img/a.tif", (lab > 0).astype(np.uint8) * 200)
    >>> tifffile.imwrite(f"{root}/lab/a.tif", lab)
    >>> len(read_cells(f"{root}/img", f"{root}/lab"))
    2
    """
    parts = list(iter_cells(images, labels, **kwargs))
    if not parts:
        raise ValueError(f"no image files found in {images!r}")
    return CellSet.concat(parts)


def _read_one(path, labels, *, channels, as_gray, margin, exclude_border, segment_kwargs,
              metadata, save_labels=None):
    path = Path(path)
    image = read_image(path, as_gray=as_gray)
    extra = metadata_from_filename(path.name)
    if isinstance(metadata, dict):
        extra.update(metadata)
    elif metadata is not None:
        if path.name not in metadata.index:
            raise KeyError(f"metadata has no row for image {path.name!r}")
        extra.update(metadata.loc[path.name].to_dict())
    if channels is None and image.ndim == 3:
        channels = [f"Ch{i + 1}" for i in range(image.shape[-1])]
    if isinstance(labels, dict):  # several compartments: one label image per name
        label_images = {name: read_labels(find_label_file(path, folder))
                        for name, folder in labels.items()}
        try:
            return CellSet.from_compartments(
                image, label_images, channels, path.name, margin=margin,
                exclude_border=exclude_border, metadata=extra,
            )
        except ValueError as exc:
            raise ValueError(f"{path.name}: {exc}") from exc
    voc = Path(labels) / f"{path.stem}.xml" if labels is not None else None
    if voc is not None and voc.exists():
        boxes, names, _ = read_voc(voc)
        cells = CellSet.from_boxes(
            image, boxes, channels, path.name, margin=margin,
            metadata={**extra, "Class": names},
        )
        if save_labels is not None:
            from .interop import _write_labels, cells_to_labels

            _write_labels(cells_to_labels(cells, image.shape[:2]), save_labels, path)
        return cells
    if labels is not None:
        label_image = read_labels(find_label_file(path, labels))
    else:
        from .segmentation import segment

        label_image = segment(image, **(segment_kwargs or {}))
        if save_labels is not None:
            from .interop import _write_labels

            _write_labels(label_image, save_labels, path)
    try:
        return CellSet.from_labels(
            image, label_image, channels, path.name, margin=margin,
            exclude_border=exclude_border, metadata=extra,
        )
    except ValueError as exc:
        raise ValueError(f"{path.name}: {exc}") from exc


# file names that plate readers and their software write; the stem must match in full
_PLATE_PATTERNS = (
    # PerkinElmer Opera / Operetta (Harmony): r02c03f01p01-ch1sk1fk1fl1
    r"r(?P<Row>\d{2})c(?P<Column>\d{2})f(?P<Site>\d{2,3})p\d{2}(?:-.*)?",
    # Yokogawa CellVoyager: <plate>_B03_T0001F001L01A01Z01C01
    r"(?P<Plate>.+)_(?P<Well>[A-Pa-p]\d{2})_T\d{4}F(?P<Site>\d{3})L\d{2}A\d{2}Z\d{2}C\d{2}",
    # Thermo Cellomics ArrayScan: <plate>_D03f00d0
    r"(?P<Plate>.+)_(?P<Well>[A-Pa-p]\d{2})f(?P<Site>\d{2})d\d",
    # Molecular Devices MetaXpress / ImageXpress: [<plate>_]A01_s1_w1<GUID>, A01_w2
    r"(?:(?P<Plate>.+)_)?(?P<Well>[A-Pa-p]\d{2})(?:_s(?P<Site>\d+))?_w\d[0-9A-Fa-f-]*",
    r"(?:(?P<Plate>.+)_)?(?P<Well>[A-Pa-p]\d{2})_s(?P<Site>\d+)",
)


def metadata_from_filename(name):
    """Plate, well and site from a file name written by a plate reader.

    Recognises PerkinElmer Opera/Operetta (``r02c03f01p01-ch1sk1fk1fl1.tiff``),
    Yokogawa CellVoyager (``Plate_B03_T0001F001L01A01Z01C01.tif``), Thermo
    Cellomics (``Plate_D03f00d0.tif``) and Molecular Devices
    MetaXpress/ImageXpress (``Plate_A01_s1_w1.tif``) names. The well is
    written as CellProfiler and pycytominer write it: row letter and two-digit
    column, ``"B03"``.

    Parameters
    ----------
    name : str or path-like
        A file name (a folder part is ignored).

    Returns
    -------
    dict
        ``Well``, and ``Plate`` and ``Site`` where the name holds them; empty
        when the name matches no known pattern.

    Examples
    --------
    >>> from featcell.io import metadata_from_filename
    >>> metadata_from_filename("r02c03f01p01-ch1sk1fk1fl1.tiff")
    {'Well': 'B03', 'Site': 1}
    >>> metadata_from_filename("AS_09125_050116030001_D03f00d0.tif")
    {'Plate': 'AS_09125_050116030001', 'Well': 'D03', 'Site': 0}
    >>> metadata_from_filename("cells.png")
    {}
    """
    import re

    stem = Path(name).name.split(".")[0]
    for pattern in _PLATE_PATTERNS:
        match = re.fullmatch(pattern, stem)
        if match is None:
            continue
        found = match.groupdict()
        out = {}
        if found.get("Plate"):
            out["Plate"] = found["Plate"]
        if found.get("Row"):
            row = int(found["Row"])
            if not 1 <= row <= 26:
                continue
            out["Well"] = f"{chr(ord('A') + row - 1)}{int(found['Column']):02d}"
        else:
            out["Well"] = found["Well"].upper()
        if found.get("Site") is not None:
            out["Site"] = int(found["Site"])
        return out
    return {}


def file_sha256(path):
    """SHA-256 hex digest of a file's content, read in 1 MiB blocks.

    Examples
    --------
    >>> import tempfile, os
    >>> from featcell.io import file_sha256
    >>> path = os.path.join(tempfile.mkdtemp(), "empty")
    >>> _ = open(path, "wb").close()
    >>> file_sha256(path)[:12]
    'e3b0c44298fc'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_path(path):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"expected a file path, got {type(path).__name__}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {str(path)!r}")
    return path
