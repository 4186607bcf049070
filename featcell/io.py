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
    "read_cells",
    "read_image",
    "read_labels",
    "read_voc",
]

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")
# images declaring more pixels (height x width x planes) are refused before decoding, as
# Pillow's MAX_IMAGE_PIXELS does: 2**28 is a 16384 x 16384 plane (512 MiB at 16 bits)
MAX_IMAGE_PIXELS = 2**28
_MAX_VOC_COORDINATE = 1e7  # beyond any real image
# suffixes that label files commonly carry: Cellpose, StarDist, CellProfiler, DSB-style folders
_LABEL_SUFFIXES = ("", "_labels", "_label", "_masks", "_mask", "_cp_masks", "_seg", "_objects")


def read_image(path, *, as_gray=False, channel_axis=None, max_pixels=None):
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
    max_pixels : int, optional
        Refuse a file whose header declares more pixels (height x width x planes)
        than this, before decoding it (a decompression bomb). Default
        :data:`MAX_IMAGE_PIXELS` (2**28).

    Returns
    -------
    image : (H, W) or (H, W, C) ndarray

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file cannot be decoded as an image, or declares more than
        ``max_pixels`` pixels.

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
    limit = _check_image_size(path, max_pixels)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with _quiet_tifffile():
                image = tifffile.imread(path)
            image = np.squeeze(image)
            if image.ndim == 3:
                axis = channel_axis if channel_axis is not None else (0 if image.shape[0] <= 8 else -1)
                image = np.moveaxis(image, axis, -1)
        else:
            image = _read_pillow(path, limit)
    except (OSError, ValueError, SyntaxError, RuntimeError, MemoryError) as exc:  # decoders vary
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


def _check_image_size(path, max_pixels):
    """Refuse a file whose header declares more than ``max_pixels`` pixels; return the limit.

    Only the header is read (tifffile's page tags, Pillow's lazy open), so a
    decompression bomb is refused before anything is inflated.
    """
    limit = MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
        raise ValueError(f"max_pixels must be a positive integer, got {max_pixels!r}")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with _quiet_tifffile(), tifffile.TiffFile(path) as tif:
                shape, pixels, n_pages = None, 0, 0
                for page in tif.pages:
                    plane = (page.imagelength, page.imagewidth)
                    shape = shape or plane
                    pixels += plane[0] * plane[1] * max(page.imagedepth, 1)
                    n_pages += 1
                    if pixels > limit:
                        break
            planes = f" in {n_pages}+ pages" if n_pages > 1 else ""
        else:
            from PIL import Image

            with _pillow_limit(None), Image.open(path) as im:
                shape = (im.size[1], im.size[0])
                pixels = shape[0] * shape[1] * max(getattr(im, "n_frames", 1), 1)
                planes = ""
    except Exception:  # noqa: BLE001 - an unreadable header: the decoder will say why
        return limit
    if pixels > limit:
        raise ValueError(
            f"image {str(path)!r} declares {shape[0]} x {shape[1]} pixels{planes} "
            f"({pixels:,} in all), more than the limit of {limit:,} (a decompression bomb?); "
            "if the image is genuine, raise the limit (max_pixels=, or --max-pixels on the "
            "command line)"
        )
    return limit


class _quiet_tifffile:
    """tifffile logs what it repairs in a damaged file; the error we raise says enough."""

    def __enter__(self):
        import logging

        self.logger = logging.getLogger("tifffile")
        self.saved = self.logger.level
        self.logger.setLevel(logging.CRITICAL)

    def __exit__(self, *exc):
        self.logger.setLevel(self.saved)


class _pillow_limit:
    """Set Pillow's own decompression-bomb limit for the duration of a read."""

    def __init__(self, limit):
        self.limit = limit

    def __enter__(self):
        from PIL import Image

        self.saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = self.limit

    def __exit__(self, *exc):
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = self.saved


def _read_pillow(path, limit):
    """A PNG, JPEG or BMP decoded by Pillow (never another of imageio's plugins).

    imageio would otherwise try every plugin on a corrupt file and end with advice
    to install video codecs; Pillow's own message is the useful one.
    """
    import imageio.v3 as iio

    with _pillow_limit(limit):
        return iio.imread(path, plugin="pillow")


def read_labels(path, *, max_pixels=None):
    """Read an instance label image (0 = background) as an integer array.

    Colour-coded label PNGs (one RGB colour per object) are converted to ids.

    Parameters
    ----------
    path : str or path-like
    max_pixels : int, optional
        As in :func:`read_image`.

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
    labels = read_image(path, max_pixels=max_pixels)
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
        name = (obj.findtext("name") or "").strip()
        _check_voc_object(path, k, name, (xmin, ymin, xmax, ymax))
        boxes.append([xmin - 1, ymin - 1, xmax, ymax])
        names.append(name)
    filename = root.findtext("filename")
    return np.asarray(boxes, dtype=float).reshape(-1, 4), names, filename


def _check_voc_object(path, k, name, box):
    """A clear error for a VOC object without a name or with a box no image can hold."""
    if not name:
        raise ValueError(f"object {k} in {str(path)!r} has no <name>; every box needs its class")
    coords = dict(zip(("xmin", "ymin", "xmax", "ymax"), box))
    bad = [f"{t}={v!r}" for t, v in coords.items()
           if not np.isfinite(v) or abs(v) > _MAX_VOC_COORDINATE]
    if bad:
        raise ValueError(
            f"object {k} ({name!r}) in {str(path)!r} has box coordinates {', '.join(bad)}; "
            "expected finite pixel positions inside the image"
        )
    if coords["xmax"] < coords["xmin"] or coords["ymax"] < coords["ymin"]:
        raise ValueError(
            f"object {k} ({name!r}) in {str(path)!r} has xmax < xmin or ymax < ymin: {box}"
        )


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
        files = sorted(p for p in source.iterdir() if _is_image_file(p))
    elif any(ch in str(source) for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(str(source)) if _is_image_file(Path(p)))
    elif source.exists():
        files = [source]
    else:
        raise FileNotFoundError(f"no such file, folder or pattern: {str(source)!r}")
    return files


def _is_image_file(path):
    """An image file of a folder: not a folder named like one, not a macOS ``._`` sidecar."""
    return (path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("._")
            and path.is_file())


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
               max_pixels=None) -> Iterator[CellSet]:
    """Stream one :class:`CellSet` per image file, never holding the whole set.

    Parameters
    ----------
    images : str, path-like or list
        Folder, glob or list of image files (see :func:`list_images`).
    labels : str or path-like, optional
        Folder of matching label images (see :func:`find_label_file`), or a
        folder of Pascal VOC ``.xml`` files with the image's stem, giving
        boxes (the box names go to ``Metadata_Class``). Without labels, nuclei
        are segmented with :func:`featcell.segment`.
    channels : list of str, optional
        Channel names.
    as_gray : bool, default=False
        Read colour images as grey.
    margin, exclude_border
        As in :meth:`CellSet.from_labels`.
    segment_kwargs : dict, optional
        Parameters of :func:`featcell.segment` when ``labels`` is None.
    metadata : pandas.DataFrame, optional
        Per-image metadata indexed by image file name; its columns are copied
        to every cell as ``Metadata_<column>``.
    max_pixels : int, optional
        Refuse images and label images declaring more pixels than this (see
        :func:`read_image`; default :data:`MAX_IMAGE_PIXELS`).

    Yields
    ------
    CellSet
        The cells of one image, ``Metadata_ImageID`` = the file name.
    """
    for path in list_images(images):
        yield _read_one(path, labels, channels=channels, as_gray=as_gray, margin=margin,
                        exclude_border=exclude_border, segment_kwargs=segment_kwargs,
                        metadata=metadata, max_pixels=max_pixels)


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
              metadata, max_pixels=None):
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{str(path)!r} is a folder, not an image file")
    image = read_image(path, as_gray=as_gray, max_pixels=max_pixels)
    _check_planes(path, image)
    extra = {}
    if metadata is not None:
        if path.name not in metadata.index:
            raise KeyError(f"metadata has no row for image {path.name!r}")
        extra = metadata.loc[path.name].to_dict()
    if channels is None and image.ndim == 3:
        channels = [f"Ch{i + 1}" for i in range(image.shape[-1])]
    voc = Path(labels) / f"{path.stem}.xml" if labels is not None else None
    if voc is not None and voc.exists():
        boxes, names, _ = read_voc(voc)
        return CellSet.from_boxes(
            image, boxes, channels, path.name, margin=margin,
            metadata={**extra, "Class": names},
        )
    if labels is not None:
        label_image = read_labels(find_label_file(path, labels), max_pixels=max_pixels)
    else:
        from .segmentation import segment

        label_image = segment(image, **(segment_kwargs or {}))
    try:
        return CellSet.from_labels(
            image, label_image, channels, path.name, margin=margin,
            exclude_border=exclude_border, metadata=extra,
        )
    except ValueError as exc:
        raise ValueError(f"{path.name}: {exc}") from exc


def _check_planes(path, image):
    """A clear error for a stack of many planes (z or time) read as (H, W, C)."""
    if image.ndim == 3 and image.shape[-1] > 8:
        raise ValueError(
            f"{path.name}: read as {image.shape[0]} x {image.shape[1]} pixels with "
            f"{image.shape[-1]} channels, which looks like a z-stack or time series; featcell "
            "measures 2-D images of up to 8 channels: split the stack into 2-D planes or "
            "project it (e.g. a maximum projection) first"
        )


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
