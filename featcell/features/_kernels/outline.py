"""The object outlines of CellProfiler's MeasureObjectIntensity (the ``Edge`` features)."""

from . import kernel


@kernel
def outline(mask, shapes, cut, out):
    """Per mask pixel: whether it lies on its object's outline.

    centrosome's ``outline`` as MeasureObjectIntensity uses it: an object
    pixel with a 4-neighbour outside the object. Each cell is its own crop;
    past the crop's sides is background, except for a cell cut by the image
    border (``cut``), for which CellProfiler's image border is not background.

    Parameters
    ----------
    mask : (P,) ndarray of bool
        The crops' masks, crop after crop, row-major.
    shapes : (N, 2) ndarray of intp
        Crop shapes.
    cut : (N,) ndarray of bool
        Cells cut by the image border.
    out : (M,) ndarray of bool
        Receives, for every mask pixel in order, whether it is on the outline.
    """
    p = k = 0
    for c in range(len(shapes)):
        height, width = shapes[c]
        for i in range(height):
            for j in range(width):
                if mask[p]:
                    up = mask[p - width] if i > 0 else cut[c]
                    down = mask[p + width] if i < height - 1 else cut[c]
                    left = mask[p - 1] if j > 0 else cut[c]
                    right = mask[p + 1] if j < width - 1 else cut[c]
                    out[k] = not (up and down and left and right)
                    k += 1
                p += 1
