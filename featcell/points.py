"""Point annotations (one position per object) and the density maps learnt from them.

Biologists annotate counting data with one click per object: ilastik's Cell Density
Counting workflow, napari's Points layer and Fiji's multi-point tool all save positions.
:func:`read_points` reads them from the formats those tools write (and from dot images,
label images and VOC boxes) as ``(k, 2)`` arrays of ``(row, col)`` positions, pixel
centres at integer coordinates. :func:`density_target` turns the positions of one image
into the density map that counting regressors learn (Lempitsky & Zisserman, 2010): the
dots smoothed by a Gaussian, summing exactly to the count.
"""

from __future__ import annotations

import array
import csv
import numbers
import os
import re
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

__all__ = ["density_target", "read_points"]

_POINT_SUFFIXES = (".csv", ".tsv", ".txt", ".xml")
_MAX_FILE_BYTES = 256 << 20  # a points table larger than this is refused before parsing
_MAX_POINTS = 10_000_000  # per file
_MAX_COORD = 1 << 20  # |coordinate| above this is no pixel position of any real image
_IMAGE_COLUMNS = ("image", "filename", "file", "image_name", "imagename", "metadata_imageid")
# (row column, col column) pairs, tried in this order; names are compared lower-case
_AXES = (
    ("axis-0", "axis-1"),  # napari Points (2-D); more axes: the last two, see _napari_axes
    ("row", "col"),
    ("row", "column"),
    ("r", "c"),
    ("y", "x"),
)
_KINDS = ("auto", "dots", "labels", "csv", "voc")


def read_points(path, *, images=None, kind="auto", shape=None):
    """Read point annotations as ``(row, col)`` positions.

    Parameters
    ----------
    path : str or path-like
        One of:

        - a **dot image** (PNG/TIFF/...): every pixel that differs from the
          background (each channel's most common value) is one object, as in
          ilastik's and the VGG cells' ``*dots.png`` files;
        - a **label image**: the centroid of each labelled object;
        - a **CSV table**: napari's Points CSV (``axis-0, axis-1`` = row, col; with
          more axes, the last two), Fiji's multi-point CSV (``X, Y``; pixel-centre
          coordinates ending in .5 are moved to integer pixel centres), or plain
          ``x, y`` or ``row, col`` (also ``r, c``) columns. A column naming the
          image (``image``, ``filename``, ``file``, ``label``, ...) splits the
          table into one array per image;
        - a **Pascal VOC XML** file: the centre of each box;
        - a **folder** of any of these, one file per image. With ``images`` each
          image is matched to its file by name, as :func:`featcell.read_cells`
          matches label images (the image's stem plus an optional suffix such as
          ``_labels``, any image, CSV or XML extension); failing that, by the part
          of the name that differs between files (``001cell.png`` matches
          ``001dots.png``).
    images : list of str or path-like, optional
        Image files the points belong to. When given, the result is a list of
        arrays, one per image in this order, and points outside an image (its
        shape is read from the file header when possible) are refused.
    kind : {"auto", "dots", "labels", "csv", "voc"}, default="auto"
        How to read image files: ``"auto"`` takes an integer grey image whose
        objects cover several pixels each as a label image, anything else as
        dots. Tables and XML are recognised by their extension.
    shape : tuple of int, optional
        ``(rows, cols)`` of the image, to refuse points outside it.

    Returns
    -------
    points : (k, 2) ndarray of float, dict or list
        One array for a file about one image; a dict ``{image name: array}`` for a
        table with an image column or a folder (keys are the table's image names
        or the point files' names); a list aligned with ``images`` when given.

    Raises
    ------
    FileNotFoundError
        If ``path`` (or an image's points file in a folder) does not exist.
    ValueError
        If the file cannot be read as points, has no position columns, holds
        NaN, infinite, negative or absurdly large positions, positions outside
        ``shape``, or too many points. The message names the file.

    See Also
    --------
    density_target : the density map of one image's points.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from featcell.points import read_points
    >>> path = Path(tempfile.mkdtemp()) / "points.csv"
    >>> _ = path.write_text("index,axis-0,axis-1\\n0,10.0,20.0\\n1,30.5,4.0\\n")
    >>> read_points(path).tolist()
    [[10.0, 20.0], [30.5, 4.0]]
    """
    if kind not in _KINDS:
        raise ValueError(f"kind={kind!r}; expected one of {_KINDS}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file or folder path, got {type(path).__name__}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such points file or folder: {str(path)!r}")
    if images is not None:
        if isinstance(images, (str, os.PathLike)):
            raise TypeError(
                f"images={images!r} is a single path; expected a list of image files"
            )
        return _points_for_images(path, [Path(p) for p in images], kind)
    if path.is_dir():
        return {f.name: _read_file(f, kind, None) for f in _point_files(path)}
    return _read_file(path, kind, shape)


_MAX_SIGMA = 1000  # pixels: the kernel (8 sigma) of a larger one would take gigabytes


def _dot_spacing(points):
    """The median distance from a dot to its nearest neighbour over every image's dots
    (``points``: a list of (k, 2) arrays; objects touch at about that distance), or None
    without neighbours."""
    from scipy.spatial import cKDTree

    gaps = []
    for p in points:
        if len(p) >= 2:
            distance, _ = cKDTree(p).query(p, k=2)
            gaps.append(distance[:, 1])
    return float(np.median(np.concatenate(gaps))) if gaps else None


def density_target(points, shape, sigma):
    """The density map of one image's points: dots smoothed by a Gaussian, summing to the count.

    Each point adds a Gaussian of standard deviation ``sigma`` (pixels) centred on
    its nearest pixel. A Gaussian cut by the image border is renormalised over the
    pixels inside, so that the map sums to the number of points exactly (up to
    floating-point rounding), wherever the points lie.

    Parameters
    ----------
    points : (k, 2) array-like of float
        ``(row, col)`` positions, pixel centres at integers, inside the image
        (``-0.5 <= row < rows - 0.5``).
    shape : tuple of int
        ``(rows, cols)`` of the image.
    sigma : float
        Standard deviation of the Gaussian, in pixels; 0 leaves the dots unsmoothed.

    Returns
    -------
    density : (rows, cols) ndarray of float64
        Sums to ``len(points)``.

    Raises
    ------
    ValueError
        If ``points`` is not ``(k, 2)``, holds NaN or positions outside ``shape``,
        or ``sigma`` is negative.

    References
    ----------
    .. [1] V. Lempitsky and A. Zisserman, "Learning to count objects in images",
       NIPS 2010.

    Examples
    --------
    >>> from featcell.points import density_target
    >>> d = density_target([[0, 0], [5, 7], [9, 9]], (10, 10), sigma=2.0)
    >>> d.shape, round(float(d.sum()), 10)
    ((10, 10), 3.0)
    """
    shape = _check_shape(shape)
    if not isinstance(sigma, numbers.Real) or not 0 <= sigma <= _MAX_SIGMA:
        raise ValueError(f"sigma={sigma!r}; expected a number of pixels from 0 to {_MAX_SIGMA} "
                         "(the Gaussian's kernel spans 8 sigma)")
    points = _check_points(points, "points", shape)
    rows, cols = _pixel_index(points, shape)
    density = np.zeros(shape, dtype=np.float64)
    if sigma == 0 or len(points) == 0:
        np.add.at(density, (rows, cols), 1.0)
        return density
    # the mass of a Gaussian centred on pixel i that falls inside [0, n): the 1-D kernel
    # filtered over a row of ones (zero outside); weight each dot by 1 / (inside mass)
    inside_r = ndi.gaussian_filter1d(np.ones(shape[0]), sigma, mode="constant")
    inside_c = ndi.gaussian_filter1d(np.ones(shape[1]), sigma, mode="constant")
    np.add.at(density, (rows, cols), 1.0 / (inside_r[rows] * inside_c[cols]))
    return ndi.gaussian_filter(density, sigma, mode="constant")


# --------------------------------------------------------------------------- helpers


def _resolve_points(images, points):
    """Per image, a (k, 2) array of positions or a float count."""
    if isinstance(points, (str, os.PathLike)):
        if not all(isinstance(i, (str, os.PathLike)) for i in images):
            raise TypeError(
                f"points={points!r} is a path; matching points files to images needs the "
                "images as file paths"
            )
        return read_points(points, images=images)
    if isinstance(points, np.ndarray) and points.ndim == 2 and points.shape[1] == 2 and len(
        images
    ) != len(points):
        raise ValueError(
            f"points is one (k, 2) array but there are {len(images)} images; expected a list "
            "with one array (or count) per image"
        )
    points = list(points)
    if len(points) != len(images):
        raise ValueError(f"points has {len(points)} entries but there are {len(images)} images")
    out = []
    for i, p in enumerate(points):
        if isinstance(p, numbers.Real) and not isinstance(p, bool):
            if not np.isfinite(p) or p < 0:
                raise ValueError(f"points[{i}] is the count {p!r}; expected a finite number >= 0")
            out.append(float(p))
        else:
            out.append(_check_points(p, f"points[{i}]"))
    return out


class _DotCountScore:
    """``score`` for counters fitted on dots: the R² of the counts.

    ``RegressorMixin.score`` would compare the predicted counts with the dot arrays
    themselves; here each image's truth is its number of dots (or the count given).
    """

    def score(self, X, y, sample_weight=None):
        """R² of the predicted counts against the true ones.

        Parameters
        ----------
        X : list of images or paths
        y : list of (k, 2) arrays or counts, or a folder or table of points files
            As for ``fit``.
        sample_weight : array-like of shape (n_images,), optional

        Returns
        -------
        score : float
        """
        from sklearn.metrics import r2_score

        wanted = [len(p) if isinstance(p, np.ndarray) else p for p in _resolve_points(X, y)]
        return float(r2_score(wanted, self.predict(X), sample_weight=sample_weight))


def _check_shape(shape):
    try:
        shape = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape={shape!r}; expected (rows, cols)") from None
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"shape={shape!r}; expected (rows, cols) of positive integers")
    return shape


def _check_points(points, what, shape=None):
    """Validate positions: a finite (k, 2) float array, inside ``shape`` when given."""
    try:
        points = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what} are not numeric (row, col) positions") from None
    if points.size == 0:
        return np.zeros((0, 2))
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"{what} has shape {points.shape}; expected (k, 2) (row, col) positions")
    if len(points) > _MAX_POINTS:
        raise ValueError(f"{what} holds {len(points)} points; at most {_MAX_POINTS} are accepted")
    if not np.isfinite(points).all():
        raise ValueError(f"{what} contains NaN or infinite positions")
    if (points < -0.5).any() or (points > _MAX_COORD).any():
        bad = points[((points < -0.5) | (points > _MAX_COORD)).any(axis=1)][0]
        raise ValueError(
            f"{what} has a position (row, col) = {tuple(bad.tolist())} that no image holds"
        )
    if shape is not None:
        outside = (points[:, 0] >= shape[0] - 0.5) | (points[:, 1] >= shape[1] - 0.5)
        if outside.any():
            bad = points[outside][0]
            raise ValueError(
                f"{what} has {int(outside.sum())} position(s) outside the image of shape "
                f"{shape}, e.g. (row, col) = {tuple(bad.tolist())}"
            )
    return points


def _pixel_index(points, shape):
    """Nearest pixel of each position (clipped onto the image: -0.5 rounds to 0)."""
    rows = np.clip(np.floor(points[:, 0] + 0.5).astype(np.intp), 0, shape[0] - 1)
    cols = np.clip(np.floor(points[:, 1] + 0.5).astype(np.intp), 0, shape[1] - 1)
    return rows, cols


def _is_image_file(path):
    from .io import _is_image_file  # imported when used: featcell.io is slower to import

    return _is_image_file(path)


def _point_files(folder):
    files = sorted(
        f for f in folder.iterdir()
        if f.is_file() and not f.name.startswith(".")  # macOS ._ sidecars, hidden files
        and (_is_image_file(f) or f.suffix.lower() in _POINT_SUFFIXES)
    )
    if not files:
        raise ValueError(f"no points files (images, CSV or VOC XML) in folder {str(folder)!r}")
    return files


def _read_file(path, kind, shape, image_name=None):
    """Points of one file: an array, or a dict for a table with an image column."""
    what = f"points file {str(path)!r}"
    size = path.stat().st_size
    if size > _MAX_FILE_BYTES and not _is_image_file(path):
        raise ValueError(f"{what} is {size} bytes; at most {_MAX_FILE_BYTES} are accepted")
    suffix = path.suffix.lower()
    if kind == "voc" or (kind == "auto" and suffix == ".xml"):
        points = _voc_centres(path)
    elif kind == "csv" or (kind == "auto" and suffix in (".csv", ".tsv", ".txt")):
        points = _read_table(path)
    elif _is_image_file(path) or kind in ("dots", "labels"):
        from .io import read_image

        image = read_image(path)  # names the file on decoding errors
        if image.size > (1 << 31):
            raise ValueError(f"{what} has {image.size} values; too large for a points image")
        points = _image_points(image, kind, what)
        shape = shape or image.shape[:2]
    else:
        raise ValueError(
            f"{what} is not a points file: expected an image (dots or labels), a CSV table "
            "or a Pascal VOC .xml file"
        )
    if isinstance(points, dict):
        if image_name is None:
            return {name: _check_points(p, f"{what} (image {name!r})", shape)
                    for name, p in points.items()}
        found = _select_image(points, image_name, what)
        return _check_points(np.zeros((0, 2)) if found is None else found, what, shape)
    return _check_points(points, what, shape)


def _image_points(image, kind, what):
    """Dots (pixels unlike the background) or label centroids of an image."""
    if kind == "auto":
        kind = "labels" if _looks_like_labels(image) else "dots"
    if kind == "labels":
        if image.ndim != 2 or not np.issubdtype(image.dtype, np.integer):
            raise ValueError(
                f"{what} has shape {image.shape} and dtype {image.dtype}; a label image must "
                "be a 2-D integer array"
            )
        if image.min() < 0:
            raise ValueError(f"{what} has negative labels; expected 0 = background, ids > 0")
        ids = np.unique(image)
        ids = ids[ids > 0]
        if len(ids) == 0:
            return np.zeros((0, 2))
        return np.asarray(ndi.center_of_mass(np.ones(image.shape), image, ids)).reshape(-1, 2)
    flat = image.reshape(image.shape[0], image.shape[1], -1)
    if not np.isfinite(flat).all():
        raise ValueError(f"{what} contains NaN or infinite pixels")
    # the background: each channel's most common value (dots are a tiny fraction of pixels)
    background = np.empty(flat.shape[-1], dtype=flat.dtype)
    for c in range(flat.shape[-1]):
        values, counts = np.unique(flat[..., c], return_counts=True)
        background[c] = values[np.argmax(counts)]
    dots = (flat != background).any(axis=-1)
    if np.count_nonzero(dots) > _MAX_POINTS:  # before building them (a checkerboard)
        raise ValueError(f"{what} has {np.count_nonzero(dots)} dot pixels; at most "
                         f"{_MAX_POINTS} are accepted")
    rows, cols = np.nonzero(dots)
    return np.column_stack([rows, cols]).astype(np.float64)


def _looks_like_labels(image):
    """An integer grey image with several values whose objects span several pixels each."""
    if image.ndim != 2 or not np.issubdtype(image.dtype, np.integer):
        return False
    n_values = len(np.unique(image))
    if n_values <= 2:
        return False  # binary: dots (a mask of one pixel per object)
    return np.count_nonzero(image) > 2 * (n_values - 1)


def _voc_centres(path):
    from .io import read_voc

    boxes = read_voc(path)[0]
    # boxes are 0-based with exclusive ends; pixel centres sit at integers
    return np.column_stack(
        [(boxes[:, 1] + boxes[:, 3]) / 2 - 0.5, (boxes[:, 0] + boxes[:, 2]) / 2 - 0.5]
    )


def _read_table(path):
    """A napari, Fiji or plain points table: an array, or {image: array} with an image column."""
    what = f"points file {str(path)!r}"
    try:
        with open(path, encoding="utf-8-sig", newline="") as stream:
            head = stream.read(4096)
    except (UnicodeDecodeError, OSError) as exc:
        raise ValueError(f"{what} is not a UTF-8 text table: {exc}") from None
    try:
        dialect = csv.Sniffer().sniff(head, delimiters=",;\t ")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    # rows are parsed as they are read from the file, blank ones skipped: memory follows
    # the points kept, not the file (a file of blank lines or short rows)
    stream = open(path, encoding="utf-8-sig", newline="")  # closed in the finally below
    rows = (r for r in csv.reader(stream, delimiter=delimiter, skipinitialspace=True)
            if any(cell.strip() for cell in r))
    try:
        header = [h.strip().lower() for h in next(rows, [])]
        if not header:
            raise ValueError(f"{what} is empty; expected a header row naming the position "
                             "columns")
        row_col, fiji = _position_columns(header, what)
        image_col = next((header.index(n) for n in _IMAGE_COLUMNS if n in header), None)
        positions, names = array.array("d"), []
        for i, record in enumerate(rows):
            if i == _MAX_POINTS:
                raise ValueError(f"{what} holds more than {_MAX_POINTS} rows; at most "
                                 f"{_MAX_POINTS} are accepted")
            if len(record) < len(header):
                raise ValueError(f"{what}: row {i + 2} has {len(record)} fields but the header "
                                 f"has {len(header)}")
            try:
                positions.extend((float(record[row_col[0]]), float(record[row_col[1]])))
            except ValueError:
                raise ValueError(
                    f"{what}: row {i + 2} has a non-numeric position "
                    f"({record[row_col[0]]!r}, {record[row_col[1]]!r})"
                ) from None
            if image_col is not None:
                names.append(record[image_col].strip())
    except csv.Error as exc:  # e.g. a field over the csv module's 131,072 characters
        raise ValueError(f"{what} is not a readable table: {exc}") from None
    except UnicodeDecodeError as exc:  # past the first 4,096 characters
        raise ValueError(f"{what} is not a UTF-8 text table: {exc}") from None
    finally:
        stream.close()
    values = np.frombuffer(positions, dtype=np.float64).reshape(-1, 2).copy()
    if fiji and len(values) and np.all(np.mod(values, 1) == 0.5):
        values -= 0.5  # ImageJ measures a point at its pixel's centre, (i + 0.5)
    if image_col is None:
        return values
    names = np.asarray(names, dtype=object)
    return {name: values[names == name] for name in dict.fromkeys(names)}


def _position_columns(header, what):
    """Indices of the (row, col) columns in a lower-cased header, and whether it is Fiji's."""
    axes = sorted(h for h in header if h.startswith("axis-"))
    if len(axes) >= 2:  # napari: axis-0 ... axis-n; the image plane is the last two
        return (header.index(axes[-2]), header.index(axes[-1])), False
    for row, col in _AXES:
        if row in header and col in header:
            # Fiji's multi-point CSV has X, Y (and often Slice, Counter, Ch); x is the column
            fiji = row == "y" and ("slice" in header or "counter" in header or "" in header)
            return (header.index(row), header.index(col)), fiji
    raise ValueError(
        f"{what} has columns {header}; expected positions as axis-0, axis-1 (napari), X, Y "
        "(Fiji, or plain x, y), or row, col"
    )


def _select_image(table, image_name, what):
    """The points of one image in a table keyed by image name (file name or stem)."""
    stem = Path(image_name).stem
    for key in (image_name, stem):
        if key in table:
            return table[key]
    by_stem = {Path(k).stem: v for k, v in table.items()}
    if stem in by_stem:
        return by_stem[stem]
    return None


def _points_for_images(path, images, kind):
    """One points array per image, from a folder matched by name or one table."""
    if path.is_file():
        if _is_image_file(path) or path.suffix.lower() == ".xml":
            if len(images) != 1:
                raise ValueError(
                    f"points file {str(path)!r} holds the points of one image but "
                    f"{len(images)} images were given; pass a folder or a table with an "
                    "image column"
                )
            return [_read_file(path, kind, _image_shape(images[0]))]
        table = _read_file(path, kind, None)
        if not isinstance(table, dict):
            if len(images) != 1:
                raise ValueError(
                    f"points file {str(path)!r} has no image column (image, filename, ...) "
                    f"but {len(images)} images were given"
                )
            table = {images[0].name: table}
        found = [_select_image(table, image.name, f"points file {str(path)!r}")
                 for image in images]
        if all(points is None for points in found) and any(len(v) for v in table.values()):
            raise ValueError(
                f"points file {str(path)!r} names none of the {len(images)} images (it names "
                f"e.g. {next(iter(table))!r}, the images are e.g. {images[0].name!r}); "
                "expected their file names or stems in its image column"
            )
        # an image without rows in the table has no objects
        return [_check_points(np.zeros((0, 2)) if points is None else points,
                              f"points file {str(path)!r} (image {image.name!r})",
                              _image_shape(image)) for image, points in zip(images, found)]
    files = _point_files(path)
    return [_read_file(_match_file(image, path, files), kind, _image_shape(image),
                       image.name) for image in images]


def _match_file(image, folder, files):
    """The points file of ``image`` in ``folder``: by label-file naming, else by name core."""
    from .io import _LABEL_SUFFIXES, find_label_file

    try:
        return find_label_file(image, folder)
    except FileNotFoundError:
        pass
    for suffix in _LABEL_SUFFIXES:
        for ext in _POINT_SUFFIXES:
            candidate = folder / f"{image.stem}{suffix}{ext}"
            if candidate.exists():
                return candidate
    # the image's name plus a word (a.png <-> a_dots.csv), else the same numbers in the name
    # (001cell.png <-> 001dots.png)
    longer = [f for f in files if f.stem.startswith(image.stem)
              and f.stem[len(image.stem):][:1] in ("_", "-", ".", " ")]
    if len(longer) == 1:
        return longer[0]
    numbers_ = _numbers(image.stem)
    matches = [f for f in files if numbers_ and _numbers(f.stem) == numbers_]
    if len(matches) == 1:
        return matches[0]
    raise FileNotFoundError(
        f"no points file for image {image.name!r} in {str(folder)!r} (looked for "
        f"{image.stem}[_labels, _mask, ...] with an image, CSV or XML extension, a name that "
        "starts with the image's, and a name with the same numbers as the image's)"
    )


def _numbers(stem):
    """The numbers in a file name, as integers: '001cell' -> (1,)."""
    return tuple(int(n) for n in re.findall(r"\d+", stem))


def _image_shape(image):
    """(rows, cols) of an image file from its header, or None when it cannot be read cheaply."""
    try:
        if image.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            from .io import _check_image_size, _quiet_tifffile, read_image

            _check_image_size(image, None)  # before tifffile lists the planes a header declares
            with _quiet_tifffile(), tifffile.TiffFile(image) as tif:
                shape = tif.series[0].shape

            return read_image(image).shape[:2] if len(shape) > 2 else tuple(shape)
        from PIL import Image

        from .io import _PILLOW_FORMATS

        with Image.open(image, formats=_PILLOW_FORMATS) as im:
            return im.size[1], im.size[0]
    except Exception:  # noqa: BLE001 - the shape check is a courtesy; the image reader reports
        return None
