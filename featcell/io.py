"""Reading microscopy files: images, label images, Pascal VOC boxes, folders of them.

Images come in as numpy arrays in their own dtype (so that :class:`CellSet`
can rescale by the dtype range, as CellProfiler does). TIFF is read with
tifffile (multi-page, OME-TIFF and ImageJ hyperstacks, with their axes,
channel names and pixel size); PNG, JPEG and BMP with scikit-image's imageio
plugin; CZI, ND2, LIF and OME-Zarr with bioio when the optional
``featcell[formats]`` extra is installed.
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import warnings
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
    "read_image_metadata",
    "read_labels",
    "read_voc",
]

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp", ".czi", ".nd2", ".lif",
                  ".zarr")
# images declaring more pixels (height x width x planes) are refused before decoding, as
# Pillow's MAX_IMAGE_PIXELS does: 2**28 is a 16384 x 16384 plane (512 MiB at 16 bits)
MAX_IMAGE_PIXELS = 2**28
_MAX_VOC_COORDINATE = 1e7  # beyond any real image
# suffixes that label files commonly carry: Cellpose, StarDist, CellProfiler, DSB-style folders
_LABEL_SUFFIXES = ("", "_labels", "_label", "_masks", "_mask", "_cp_masks", "_seg", "_objects")


def read_image(path, *, as_gray=False, channel_axis=None, z_project=None, timepoint=None,
               max_pixels=None):
    """Read one microscopy image into an array in its stored dtype.

    The axes come from the file's own metadata: OME-TIFF (``axes``, channel
    names, pixel size), ImageJ hyperstacks, and, through the optional
    ``featcell[formats]`` extra (bioio), CZI, ND2, LIF and OME-Zarr. A Z or T
    axis is never taken as channels: it is refused, naming the axis, unless
    ``z_project`` or ``timepoint`` says how to reduce it.

    Parameters
    ----------
    path : str or path-like
        A TIFF (incl. multi-page, OME-TIFF and ImageJ hyperstacks), PNG, JPEG
        or BMP file; with ``featcell[formats]`` installed also ``.czi``,
        ``.nd2``, ``.lif`` and ``.zarr`` (OME-Zarr).
    as_gray : bool, default=False
        Average colour channels to one grey plane (keeping the dtype range);
        an alpha channel is dropped first.
    channel_axis : int, optional
        The axis that holds channels, counted in the stored array after axes
        of length 1 are dropped; it is moved last so the result is ``(H, W, C)``.
        It overrides the file's metadata (for example an ImageJ stack whose
        channels were saved as slices). By default the channels are the
        file's ``C`` (or RGB ``S``) axis; a file without axis metadata (a plain
        multi-page TIFF) has its pages as channels, or its last axis when that
        is the smallest (an ``(H, W, C)`` array saved as it was).
    z_project : {"max", "mean"}, optional
        Project a Z axis (a z-stack) to one plane by its maximum or mean (the
        mean is rounded back to the stored integer dtype). Without it a file
        with several Z planes is refused.
    timepoint : int, optional
        Take this time point (0-based) of a T axis. Without it a file with
        several time points is refused.
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
        If the file cannot be decoded as an image, has a Z, T or other axis
        that is not reduced, or declares more than ``max_pixels`` pixels.
    ImportError
        For CZI, ND2, LIF or OME-Zarr files when ``featcell[formats]`` is not
        installed.

    Warns
    -----
    FirstSceneWarning
        A ``UserWarning``, if the file holds several scenes (series: positions of a
        multi-position acquisition); only the first is read. Split such files first.

    See Also
    --------
    read_image_metadata : the channel names and pixel size stored in the file.

    Examples
    --------
    >>> import numpy as np, tifffile, tempfile, os
    >>> from featcell.io import read_image
    >>> path = os.path.join(tempfile.mkdtemp(), "a.ome.tif")
    >>> tifffile.imwrite(path, np.zeros((5, 2, 16, 16), np.uint16), metadata={"axes": "ZCYX"})
    >>> read_image(path, z_project="max").shape
    (16, 16, 2)
    """
    image, info = _read_image(path, as_gray=as_gray, channel_axis=channel_axis,
                              z_project=z_project, timepoint=timepoint, max_pixels=max_pixels)
    _warn_scenes(path, info, stacklevel=3)
    return image


def read_image_metadata(path):
    """The channel names and pixel size that a microscopy file stores.

    Parameters
    ----------
    path : str or path-like
        An image file, as in :func:`read_image`.

    Returns
    -------
    dict
        ``axes`` (the file's axes, e.g. ``"ZCYX"``; ``Q`` or ``I`` where the
        file does not say), ``shape``, ``channel_names`` (the names stored in the
        file, or None) and ``pixel_size`` (``(x, y)`` in micrometres, or None).

    Examples
    --------
    >>> import numpy as np, tifffile, tempfile, os
    >>> from featcell.io import read_image_metadata
    >>> path = os.path.join(tempfile.mkdtemp(), "a.ome.tif")
    >>> tifffile.imwrite(path, np.zeros((2, 16, 16), np.uint16), metadata={
    ...     "axes": "CYX", "Channel": {"Name": ["DAPI", "GFP"]}, "PhysicalSizeX": 0.65,
    ...     "PhysicalSizeY": 0.65})
    >>> info = read_image_metadata(path)
    >>> info["axes"], info["channel_names"], info["pixel_size"]
    ('CYX', ['DAPI', 'GFP'], (0.65, 0.65))
    """
    path = _check_path(path)
    suffix = _suffix(path)
    if suffix in (".tif", ".tiff"):
        import tifffile

        _check_image_size(path, None)  # a header declaring a bomb: refused before parsing
        try:
            with _quiet_tifffile(), tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                return {"axes": series.axes, "shape": tuple(series.shape),
                        **_tiff_metadata(tif, series)}
        except Exception as exc:  # noqa: BLE001 - decoders' errors vary by file and version
            raise _unreadable(path, exc) from exc
    if suffix in _BIOIO_SUFFIXES:
        _, info = _read_bioio(path)
        return info
    image = read_image(path)
    return {"axes": "YXS"[: image.ndim], "shape": image.shape, "channel_names": None,
            "pixel_size": None}


# file suffixes read through bioio (the featcell[formats] extra); OME-Zarr is a folder
_BIOIO_SUFFIXES = (".czi", ".nd2", ".lif", ".zarr")
_Z_PROJECTIONS = ("max", "mean")
# axes that tifffile gives when the file does not say what its planes are
_UNKNOWN_AXES = ("Q", "I")
# micrometres per unit of the OME and ImageJ length units
_MICROMETRES = {"µm": 1.0, "\u03bcm": 1.0, "um": 1.0, "micron": 1.0, "microns": 1.0,
                "micrometer": 1.0, "micrometre": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4,
                "m": 1e6, "pm": 1e-6, "Å": 1e-4}


def _read_image(path, *, as_gray=False, channel_axis=None, z_project=None, timepoint=None,
                max_pixels=None):
    """:func:`read_image` and what the file says about it: ``(image, info)``."""
    path = _check_path(path)
    _check_reduction(channel_axis, z_project, timepoint)
    suffix = _suffix(path)
    limit = _check_image_size(path, max_pixels)
    info = {"channel_names": None, "pixel_size": None}
    if suffix in _BIOIO_SUFFIXES:
        (data, axes), info = _read_bioio(path, with_data=True)
        image, names_kept = _arrange_axes(data, axes, path, channel_axis, z_project, timepoint)
    else:
        try:
            if suffix in (".tif", ".tiff"):
                import tifffile

                with _quiet_tifffile(), tifffile.TiffFile(path) as tif:
                    series = tif.series[0]
                    data, axes = series.asarray(), series.axes
                    info = {"axes": axes, "shape": tuple(series.shape),
                            "n_scenes": len(tif.series), **_tiff_metadata(tif, series)}
                image, names_kept = _arrange_axes(data, axes, path, channel_axis, z_project,
                                                  timepoint)
            else:
                image, names_kept = np.asarray(_read_pillow(path, limit)), False
        except Exception as exc:  # noqa: BLE001 - decoders' errors vary by file and version
            if isinstance(exc, _AxisError):
                raise
            raise _unreadable(path, exc) from exc
    if not names_kept:
        info["channel_names"] = None
    if image.ndim == 3 and image.shape[-1] == 4 and suffix in (".png", ".jpg", ".jpeg"):
        image = image[..., :3]  # alpha carries no signal in microscopy PNGs
    if image.ndim not in (2, 3):
        raise ValueError(
            f"image {str(path)!r} has shape {image.shape}; expected (H, W) or (H, W, C). "
            "Split z-stacks and time series into 2-D planes first."
        )
    if as_gray and image.ndim == 3:
        gray = image.mean(axis=-1)
        image = gray.astype(image.dtype) if np.issubdtype(image.dtype, np.integer) else gray
        info["channel_names"] = None
    return image, info


def _unreadable(path, exc):
    """The error for a file a decoder could not read, naming the file (and the decoder's
    error type when it is not a plain ValueError or OSError: a ZeroDivisionError...)."""
    detail = exc if isinstance(exc, (ValueError, OSError)) else f"{type(exc).__name__}: {exc}"
    return ValueError(f"could not read image {str(path)!r}: {detail}")


class _AxisError(ValueError):
    """A file whose axes featcell will not guess (a Z or T axis, an unknown axis)."""


def _suffix(path):
    return path.suffix.lower()


def _check_reduction(channel_axis, z_project, timepoint):
    if channel_axis is not None and (
        isinstance(channel_axis, bool) or not isinstance(channel_axis, (int, np.integer))
    ):
        raise TypeError(f"channel_axis must be an int or None, got {channel_axis!r}")
    if z_project is not None and z_project not in _Z_PROJECTIONS:
        raise ValueError(
            f"z_project must be one of {list(_Z_PROJECTIONS)} or None, got {z_project!r}"
        )
    if timepoint is not None and (
        isinstance(timepoint, bool) or not isinstance(timepoint, (int, np.integer)) or timepoint < 0
    ):
        raise ValueError(f"timepoint must be an int >= 0 or None, got {timepoint!r}")


def _arrange_axes(data, axes, path, channel_axis, z_project, timepoint):
    """``data`` with labelled ``axes`` as ``(H, W)`` or ``(H, W, C)``.

    Returns the image and whether its channels are the file's own ``C`` axis
    (so that the file's channel names apply).
    """
    data = np.asarray(data)
    axes = str(axes).upper()
    if len(axes) != data.ndim:
        raise ValueError(f"axes {axes!r} do not match the data's shape {data.shape}")
    shown = f"axes {axes!r}, shape {data.shape}"
    keep = [i for i, (a, n) in enumerate(zip(axes, data.shape)) if n > 1 or a in "YX"]
    data = data.reshape([data.shape[i] for i in keep])
    axes = [axes[i] for i in keep]
    own_channels = "C" in axes
    if channel_axis is not None and data.ndim > 2:  # a grey image has no channel axis
        if not -data.ndim <= channel_axis < data.ndim:
            raise _AxisError(
                f"channel_axis={channel_axis} is out of range for image {str(path)!r} with "
                f"{data.ndim} axes of length > 1 ({shown})"
            )
        k = channel_axis % data.ndim
        if axes[k] != "C":  # the caller knows better than the file (e.g. channels as slices)
            own_channels = False
            rest = [i for i in range(data.ndim) if i != k]
            if axes[k] in "YX":  # the image plane is then the last two other axes
                for i in rest:
                    axes[i] = "Q" if axes[i] in "YX" else axes[i]
                axes[rest[-2]], axes[rest[-1]] = "Y", "X"
            axes = ["Q" if a == "C" else a for a in axes]
            axes[k] = "C"
    if "S" in axes:  # RGB samples are channels; with a C axis too, C x S channels
        data = np.moveaxis(data, axes.index("S"), -1)
        axes = [a for a in axes if a != "S"]
        if "C" in axes:
            c = axes.index("C")
            data = np.moveaxis(data, -1, c + 1)
            data = data.reshape(data.shape[:c] + (-1,) + data.shape[c + 2:])
            own_channels = False
        else:
            axes.append("C")
    if "T" in axes:
        t = axes.index("T")
        n = data.shape[t]
        if timepoint is None:
            raise _AxisError(
                f"image {str(path)!r} has a time axis T of {n} time points ({shown}); "
                "featcell measures one 2-D image at a time: pass timepoint=K (--timepoint K) "
                "to take one, or channel_axis (--channel-axis) if these planes are channels"
            )
        if timepoint >= n:
            raise _AxisError(f"timepoint={timepoint} but image {str(path)!r} has {n} time points")
        data = np.take(data, timepoint, axis=t)
        axes.pop(t)
    if "Z" in axes:
        z = axes.index("Z")
        if z_project is None:
            raise _AxisError(
                f"image {str(path)!r} is a z-stack: its Z axis has {data.shape[z]} planes "
                f"({shown}); pass z_project='max' or 'mean' (--z-project max|mean) to project "
                "it to one plane, or channel_axis (--channel-axis) if these planes are channels"
            )
        data = _project(data, z, z_project)
        axes.pop(z)
    unknown = [i for i, a in enumerate(axes) if a not in "YXC"]
    if unknown and "C" not in axes and len(unknown) == 1 and axes[unknown[0]] in _UNKNOWN_AXES:
        i = unknown[0]
        if len(axes) == 3 and i == 0 and data.shape[2] < min(data.shape[:2]):
            # an (H, W, C) array saved without axes: tifffile calls its axes QYX
            axes = ["Y", "X", "C"]
        else:
            axes[i] = "C"
        unknown = []
    if unknown:
        names = ", ".join(f"{axes[i]} ({data.shape[i]})" for i in unknown)
        raise _AxisError(
            f"image {str(path)!r} has axes featcell does not take as channels: {names} "
            f"({shown}); pass channel_axis (--channel-axis) to say which axis holds the channels"
        )
    order = [axes.index(a) for a in "YXC" if a in axes]
    return np.transpose(data, order), own_channels


def _project(data, axis, how):
    if how == "max":
        return data.max(axis=axis)
    mean = data.mean(axis=axis)
    if np.issubdtype(data.dtype, np.integer):
        return np.rint(mean).astype(data.dtype)
    return mean.astype(data.dtype, copy=False)


def _tiff_metadata(tif, series):
    """Channel names and pixel size (micrometres) of an OME-TIFF or ImageJ file."""
    names, pixel_size = None, None
    if tif.is_ome and tif.ome_metadata:
        names, pixel_size = _ome_metadata(tif.ome_metadata)
    elif tif.is_imagej and tif.imagej_metadata:
        meta = tif.imagej_metadata
        labels, n_channels = meta.get("Labels"), int(meta.get("channels", 1) or 1)
        if isinstance(labels, (list, tuple)) and len(labels) >= n_channels > 1:
            names = [str(v) for v in labels[:n_channels]]  # ImageJ planes run C fastest
        unit = _MICROMETRES.get(str(meta.get("unit", "")).strip().lower())
        tags = series.pages[0].tags if series.pages and series.pages[0] is not None else {}
        if unit is not None and "XResolution" in tags and "YResolution" in tags:
            x, y = (tags[t].value for t in ("XResolution", "YResolution"))
            if x[0] > 0 and y[0] > 0:
                pixel_size = (unit * x[1] / x[0], unit * y[1] / y[0])
    if names is not None and (not any(names) or len(names) != _channel_count(series)):
        names = None
    return {"channel_names": names, "pixel_size": pixel_size}


def _channel_count(series):
    axes, shape = series.axes, series.shape
    return shape[axes.index("C")] if "C" in axes else 1


def _ome_metadata(xml):
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None, None
    image = root.find("{*}Image")  # tifffile's first series is the first OME Image
    pixels = image.find("{*}Pixels") if image is not None else None
    if pixels is None:
        return None, None
    names = [c.get("Name") or "" for c in pixels.findall("{*}Channel")]
    names = names if any(names) else None  # unnamed channels among named ones get Ch<k>
    pixel_size = None
    try:
        x, y = float(pixels.get("PhysicalSizeX")), float(pixels.get("PhysicalSizeY"))
        ux = _MICROMETRES.get(pixels.get("PhysicalSizeXUnit", "µm"))
        uy = _MICROMETRES.get(pixels.get("PhysicalSizeYUnit", "µm"))
        if ux is not None and uy is not None and x > 0 and y > 0:
            pixel_size = (x * ux, y * uy)
    except (TypeError, ValueError):
        pass
    return names, pixel_size


def _read_bioio(path, with_data=False):
    """Read a CZI, ND2, LIF or OME-Zarr file through bioio (first scene)."""
    try:
        from bioio import BioImage
    except ImportError as exc:
        raise ImportError(
            f"reading {path.suffix} files such as {str(path)!r} needs bioio and its plugins: "
            "pip install 'featcell[formats]'"
        ) from exc
    try:
        image = BioImage(path)
        axes = "".join(image.dims.order)
        names = [str(c) for c in image.channel_names] if "C" in axes else None
        sizes = image.physical_pixel_sizes
        pixel_size = (sizes.X, sizes.Y) if sizes.X and sizes.Y else None
        shape = tuple(image.shape)
        n_scenes = len(image.scenes)
        data = image.data if with_data else None
    except Exception as exc:  # noqa: BLE001 - plugins raise many kinds
        if type(exc).__name__ == "UnsupportedFileFormatError":
            raise ImportError(
                f"no bioio plugin reads {str(path)!r}: pip install 'featcell[formats]' "
                "(bioio-czi, bioio-nd2, bioio-lif, bioio-ome-zarr)"
            ) from exc
        raise ValueError(f"could not read image {str(path)!r}: {exc}") from exc
    if names is not None and len(names) != shape[axes.index("C")]:
        names = None
    info = {"axes": axes, "shape": shape, "channel_names": names, "pixel_size": pixel_size,
            "n_scenes": n_scenes}
    return ((np.asarray(data), axes), info) if with_data else (None, info)


class FirstSceneWarning(UserWarning):
    """A file holds several scenes (series) and only the first was read."""


def _warn_scenes(path, info, stacklevel=4):
    if info.get("n_scenes", 1) > 1:
        warnings.warn(f"{str(path)!r} holds {info['n_scenes']} scenes (series); featcell reads "
                      "the first only. Save each scene as its own file to measure them all",
                      FirstSceneWarning, stacklevel=stacklevel)


def _valid_channel_names(names):
    """The file's channel names as valid featcell names: ``(names, {new: old})``.

    Characters other than letters and digits are dropped ("DAPI-405" ->
    "DAPI405"), a name starting with a digit gets a ``Ch`` prefix, an empty one
    becomes ``Ch<k>``, and repeats get a number.
    """
    valid, renamed = [], {}
    for k, name in enumerate(names):
        new = "".join(ch for ch in str(name) if ch.isascii() and ch.isalnum())
        if not new:
            new = f"Ch{k + 1}"
        elif not new[0].isalpha():
            new = f"Ch{new}"
        base, n = new, 2
        while new in valid:
            new, n = f"{base}{n}", n + 1
        valid.append(new)
        if new != name:
            renamed[new] = str(name)
    return valid, renamed


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
                shape, pixels = None, 0
                for page in tif.pages:
                    plane = (page.imagelength, page.imagewidth)
                    shape = shape or plane
                    # more than 4 samples per pixel (RGBA) are planes in all but name
                    samples = page.samplesperpixel if page.samplesperpixel > 4 else 1
                    pixels += plane[0] * plane[1] * max(page.imagedepth, 1) * samples
                    if pixels > limit:
                        break
                # an OME header may declare planes the file lacks: tifffile fills them
                declared = _ome_declared_pixels(tif.ome_metadata) if tif.is_ome else 0
            if declared > pixels:
                pixels = declared
            n_planes = pixels // max(shape[0] * shape[1], 1) if shape else 1
            planes = f" x {n_planes:,} planes" if n_planes > 1 else ""
        else:
            from PIL import Image

            with _pillow_limit(None), Image.open(path, formats=_PILLOW_FORMATS) as im:
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


def _ome_declared_pixels(xml):
    """Pixels of the first image an OME-XML header declares (X * Y * Z * C * T), or 0.

    At least one pixel per plane: tifffile lists every declared plane, so a header
    declaring a billion 1 x 1 planes is as costly to open as a billion pixels.
    """
    try:
        pixels = ET.fromstring(xml).find("{*}Image/{*}Pixels")
        sizes = [max(int(pixels.get(f"Size{axis}", 1)), 1) for axis in "XYZCT"]
    except (ET.ParseError, AttributeError, TypeError, ValueError):
        return 0
    return math.prod(sizes[2:]) * max(sizes[0] * sizes[1], _PLANE_COST)


# the pixels a declared plane counts for at least (tifffile keeps about 100 bytes per plane)
_PLANE_COST = 256


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


# the only formats Pillow may decode, whatever a file's suffix says: others (EPS hands the
# file to Ghostscript, TIFF and the many rarer ones) are refused before any decoding
_PILLOW_FORMATS = ("PNG", "JPEG", "BMP")


def _read_pillow(path, limit):
    """A PNG, JPEG or BMP decoded by Pillow (never another of imageio's plugins).

    imageio would otherwise try every plugin on a corrupt file and end with advice
    to install video codecs; Pillow's own message is the useful one. The header is
    checked first: a file of any other format is refused (an ``OSError`` naming the
    formats allowed), even one Pillow could open.
    """
    import imageio.v3 as iio
    from PIL import Image, UnidentifiedImageError

    with _pillow_limit(limit):
        try:
            with Image.open(path, formats=_PILLOW_FORMATS) as im:
                frames = getattr(im, "n_frames", 1)
        except UnidentifiedImageError as exc:
            raise OSError(f"not a PNG, JPEG or BMP file (its suffix says {path.suffix!r}; "
                          "other formats are not decoded)") from exc
        if frames > 1:  # an animated PNG: its frames would pass for rows and channels
            raise ValueError(f"an animation of {frames} frames; expected one image (save "
                             "each plane as its own file, or a stack as a TIFF)")
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
        elif labels.shape[-1] not in (3, 4) or (
                _suffix(Path(path)) in (".tif", ".tiff") and labels.dtype != np.uint8):
            # planes of ids (nuclei and cells stacked), not one RGB colour per object
            raise ValueError(
                f"label image {str(path)!r} has {labels.shape[-1]} planes that differ; "
                "expected one plane of object ids (save each label set as its own file, "
                "e.g. --labels Nuclei=nuclei/ Cells=cells/)"
            )
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
    if labels.size and labels.max() > np.iinfo(np.int32).max:  # would wrap around
        raise ValueError(
            f"label image {str(path)!r} has object ids up to {labels.max()}; expected ids "
            f"below {np.iinfo(np.int32).max + 1:,} (renumber the objects 1, 2, ...)"
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
    >>> import tempfile
    >>> from pathlib import Path
    >>> from featcell.io import read_voc
    >>> path = Path(tempfile.mkdtemp()) / "a.xml"
    >>> _ = path.write_text("<annotation><filename>a.png</filename><object><name>Dead"
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
        From a folder or a glob, the label files of the images beside them are left
        out: ``x_masks.png``, ``x_cp_masks.png``, ``x_labels.tif`` ... when ``x.png``
        is listed too (Cellpose and most segmenters write their masks there).

    Examples
    --------
    >>> from featcell.io import list_images
    >>> list_images([])
    []
    """
    if isinstance(source, (list, tuple)):
        return [Path(p) for p in source]
    source = Path(source)
    if source.is_dir() and source.suffix.lower() != ".zarr":  # an OME-Zarr image is a folder
        files = sorted(p for p in source.iterdir() if _is_image_file(p))
    elif any(ch in str(source) for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(str(source)) if _is_image_file(Path(p)))
    elif source.exists():
        return [source]
    else:
        raise FileNotFoundError(f"no such file, folder or pattern: {str(source)!r}")
    stems = {(p.parent, p.stem) for p in files}
    return [p for p in files if not any(
        suffix and p.stem.endswith(suffix) and (p.parent, p.stem[: -len(suffix)]) in stems
        for suffix in _LABEL_SUFFIXES)]


def _is_image_file(path):
    """An image file of a folder: not a folder named like one (but an OME-Zarr folder), not a
    macOS ``._`` sidecar."""
    suffix = path.suffix.lower()
    return (suffix in IMAGE_SUFFIXES and not path.name.startswith("._")
            and (path.is_file() or (suffix == ".zarr" and path.is_dir())))


def find_label_file(image_path, labels):
    """Find the label image that matches ``image_path`` in the folder ``labels``.

    The label file has the image's stem (without ``.ome`` for OME files), optionally
    followed by one of
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
    for stem in _stems(image_path):
        for suffix in _LABEL_SUFFIXES:
            for ext in (image_path.suffix, *IMAGE_SUFFIXES):
                candidate = labels / f"{stem}{suffix}{ext}"
                if candidate.exists() and candidate != image_path:
                    return candidate
    raise FileNotFoundError(
        f"no label image for {image_path.name!r} in {str(labels)!r} (looked for "
        f"{image_path.stem}{{{','.join(s for s in _LABEL_SUFFIXES if s)}}}.<ext>)"
    )


def iter_cells(images, labels=None, *, channels=None, as_gray=False, margin=8,
               exclude_border=False, segment_kwargs=None, metadata=None, channel_axis=None,
               z_project=None, timepoint=None, max_pixels=None,
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
        Channel names. By default the names stored in the file (OME-TIFF,
        ImageJ, bioio formats), made valid (letters and digits only:
        ``"DAPI-405"`` becomes ``"DAPI405"``, with a warning, and the map in
        ``Metadata_ChannelNames``), else ``Ch1``, ``Ch2``, ...
    as_gray : bool, default=False
        Read colour images as grey.
    channel_axis, z_project, timepoint
        How to read each file's axes, as in :func:`read_image`.
    margin, exclude_border
        As in :meth:`CellSet.from_labels`.
    segment_kwargs : dict, optional
        Parameters of :func:`featcell.segment` when ``labels`` is None.
    metadata : pandas.DataFrame or dict, optional
        Per-image metadata indexed by image file name, or one dict for all
        images (e.g. ``{"Plate": "P1"}``); copied to every cell as
        ``Metadata_<column>``. Plate, well and site also come from file names
        that plate readers write (:func:`metadata_from_filename`); given
        metadata wins. The pixel size stored in the file, if any, is copied as
        ``Metadata_PixelSizeX`` and ``Metadata_PixelSizeY`` (micrometres).
    max_pixels : int, optional
        Refuse images and label images declaring more pixels than this (see
        :func:`read_image`; default :data:`MAX_IMAGE_PIXELS`).
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
                        metadata=metadata, channel_axis=channel_axis, z_project=z_project,
                        timepoint=timepoint, max_pixels=max_pixels, save_labels=save_labels)


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


def _stems(path):
    """A file's names without its extension: ``a`` for ``a.tif``; ``a.ome`` and ``a`` for
    ``a.ome.tif`` (and ``a.ome.zarr``)."""
    stem = Path(path).stem
    return [stem, stem[:-4]] if stem.lower().endswith(".ome") else [stem]


def _metadata_key(index, path):
    """The row of a per-image table for an image file: its name, else its name without the
    extension (tables often list ``well_A01`` for ``well_A01.tif`` or ``.ome.tif``), else
    None."""
    path = Path(path)
    return next((key for key in (path.name, *_stems(path)) if key in index), None)


def _read_one(path, labels, *, channels, as_gray, margin, exclude_border, segment_kwargs,
              metadata, channel_axis=None, z_project=None, timepoint=None, max_pixels=None,
              save_labels=None):
    path = Path(path)
    image, info = _read_image(path, as_gray=as_gray, channel_axis=channel_axis,
                              z_project=z_project, timepoint=timepoint, max_pixels=max_pixels)
    _warn_scenes(path, info)
    image_id = _text(path.name)
    extra = {**metadata_from_filename(path.name), **_file_metadata(info)}
    if isinstance(metadata, dict):
        extra.update(metadata)
    elif metadata is not None:
        key = _metadata_key(metadata.index, path)
        if key is None:
            raise KeyError(f"metadata has no row for image {path.name!r} (nor {path.stem!r}); "
                           f"it names e.g. {str(metadata.index[0])!r}" if len(metadata.index)
                           else "metadata is empty")
        # a blank cell of a text column is missing (None), not the number NaN; numeric
        # columns keep their NaN, and so their type
        text = set(metadata.columns[metadata.dtypes == object])
        extra.update({k: None if k in text and _is_blank(v) else v
                      for k, v in metadata.loc[key].items()})
    if channels is None and image.ndim == 3:
        channels = [f"Ch{i + 1}" for i in range(image.shape[-1])]
        if info["channel_names"] is not None:
            channels, renamed = _valid_channel_names(info["channel_names"])
            if renamed:
                _warn_renamed(renamed)
                extra["ChannelNames"] = json.dumps(renamed)
    if isinstance(labels, dict):  # several compartments: one label image per name
        label_images = {name: read_labels(find_label_file(path, folder), max_pixels=max_pixels)
                        for name, folder in labels.items()}
        try:
            return CellSet.from_compartments(
                image, label_images, channels, image_id, margin=margin,
                exclude_border=exclude_border, metadata=extra,
            )
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"{path.name}: {exc}") from exc
    voc = Path(labels) / f"{path.stem}.xml" if labels is not None else None
    if voc is not None and voc.exists():
        if "Class" in extra:  # the boxes' names fill it
            raise ValueError(f"{path.name}: the metadata's 'Class' would be replaced by the "
                             "names of the Pascal VOC boxes; rename that column")
        boxes, names, _ = read_voc(voc)
        try:
            cells = CellSet.from_boxes(
                image, boxes, channels, image_id, margin=margin,
                metadata={**extra, "Class": names},
            )
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"{path.name}: {exc}") from exc
        if save_labels is not None:
            from .interop import _write_labels, cells_to_labels

            _write_labels(cells_to_labels(cells, image.shape[:2]), save_labels, path)
        return cells
    if labels is not None:
        label_image = read_labels(find_label_file(path, labels), max_pixels=max_pixels)
    else:
        from .segmentation import segment

        kwargs = dict(segment_kwargs or {})
        # the reader's images are channels last: with more than 4 channels and none chosen,
        # the objects are segmented on their mean, as for 2 channels
        many = image.ndim == 3 and image.shape[-1] > 4 and kwargs.get("channel") is None
        label_image = segment(image.mean(axis=-1) if many else image, **kwargs)
        if save_labels is not None:
            from .interop import _write_labels

            _write_labels(label_image, save_labels, path)
    try:
        return CellSet.from_labels(
            image, label_image, channels, image_id, margin=margin,
            exclude_border=exclude_border, metadata=extra,
        )
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"{path.name}: {exc}") from exc


def _text(name):
    """``name`` as text any table can hold: the bytes of a file name that are not UTF-8
    (which Python reads as surrogates) written as ``\\xff``."""
    try:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # other lone surrogates
        return name.encode("utf-8", "backslashreplace").decode("utf-8")


def _is_blank(value):
    """A missing scalar: None, NaN, ``pd.NA``, ``NaT``."""
    import pandas as pd

    return pd.api.types.is_scalar(value) and bool(pd.isna(value))


def _file_metadata(info):
    """``Metadata_*`` values that the file itself stores (its pixel size)."""
    if info.get("pixel_size") is None:
        return {}
    x, y = info["pixel_size"]
    return {"PixelSizeX": float(x), "PixelSizeY": float(y)}


def _warn_renamed(renamed):
    pairs = ", ".join(f"{old!r} -> {new!r}" for new, old in renamed.items())
    warnings.warn(
        f"channel names from the image files are not valid feature names (letters and digits "
        f"only) and were renamed: {pairs}; the map is kept in Metadata_ChannelNames, or pass "
        "channels=[...] (--channels) to name them yourself",
        UserWarning,
        stacklevel=4,
    )


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
    if path.is_dir() and path.suffix.lower() != ".zarr":  # an OME-Zarr image is a folder
        raise ValueError(f"{str(path)!r} is a folder, not an image file")
    return path
