"""The object outlines of CellProfiler's MeasureObjectIntensity (the ``Edge`` features)."""

from . import kernel


@kernel
def outline(mask, index, obj, rows, cols, shapes, cut, out):
    """Per mask pixel: whether it lies on its object's outline.

    centrosome's ``outline`` as MeasureObjectIntensity uses it: an object
    pixel with a 4-neighbour outside the object. Each cell is its own crop;
    past the crop's sides is background, except for a cell cut by the image
    border (``cut``), for which CellProfiler's image border is not background.

    Parameters
    ----------
    mask : (P,) ndarray of uint8
        The crops' masks (a bool array's bytes), crop after crop, row-major.
    index : (M,) ndarray of intp
        Position in ``mask`` of every mask pixel.
    obj, rows, cols : (M,) ndarrays of int32
        Its cell, and its row and column in the cell's crop.
    shapes : (N, 2) ndarray of intp
        Crop shapes.
    cut : (N,) ndarray of uint8
        Cells cut by the image border (a bool array's bytes).
    out : (M,) ndarray of uint8
        Receives 1 for a mask pixel on the outline, else 0.
    """
    for k in range(len(index)):
        p, i, j, c = index[k], rows[k], cols[k], obj[k]
        height, width, rim = shapes[c, 0], shapes[c, 1], cut[c]
        up = mask[p - width] if i > 0 else rim
        down = mask[p + width] if i < height - 1 else rim
        left = mask[p - 1] if j > 0 else rim
        right = mask[p + 1] if j < width - 1 else rim
        out[k] = (up & down & left & right) == 0
