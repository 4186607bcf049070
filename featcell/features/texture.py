"""Per-cell texture features: CellProfiler's MeasureTexture and MeasureGranularity,
plus local binary patterns and Gabor filter energies.

The :class:`Texture` transformer assembles the families, each in its own
module: :mod:`~featcell.features.haralick`, :mod:`~featcell.features.gabor`,
:mod:`~featcell.features.lbp` and :mod:`~featcell.features.granularity`.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import ClassVar

from sklearn.utils._param_validation import Interval

from ._base import CellFeatureTransformer
from ._pixels import CellPixels
from .gabor import cellprofiler_gabor, gabor_energy, gabor_energy_names, gabor_names
from .granularity import granularity, granularity_names
from .haralick import HARALICK_FEATURES, haralick, haralick_names
from .lbp import lbp, lbp_names

__all__ = ["HARALICK_FEATURES", "Texture"]


def _check_scales(scales):
    try:
        scales = tuple(scales)
    except TypeError:
        scales = (scales,)
    if (
        not scales
        or any(isinstance(s, bool) or not isinstance(s, Integral) or s < 1 for s in scales)
        or len(set(scales)) != len(scales)
    ):
        raise ValueError(
            f"scales must be a non-empty sequence of distinct positive integers (pixels), "
            f"e.g. (3,) or (3, 5); got {scales!r}"
        )
    return tuple(int(s) for s in scales)


class Texture(CellFeatureTransformer):
    """Per-cell texture features: Haralick, Gabor, LBP and granularity, per channel.

    Reproduces CellProfiler's MeasureTexture (Haralick features, as
    cp_measure's ``get_texture``; and the Gabor feature of CellProfiler 3)
    and MeasureGranularity (as cp_measure's ``get_granularity``, on the
    whole image), and adds local binary pattern histograms and Gabor filter
    energies, for all cells of a :class:`~featcell.CellSet` at once.

    Parameters
    ----------
    features : str or list of str, optional
        Feature families to compute, any of ``"haralick"`` (13 Haralick
        features x 4 directions per scale), ``"gabor"`` (CellProfiler's Gabor
        score per scale), ``"gabor_energy"`` (mean Gabor filter energy per
        scale and orientation), ``"lbp"`` (uniform local binary pattern
        histogram), ``"granularity"`` (granular spectrum). Default: all.
    channels : str or list of str, optional
        Channels to measure. Default: all channels of the cells.
    scales : sequence of int, default=(3,)
        Texture scales in pixels: the Haralick pixel-pair distance, and the
        wavelength of the Gabor features.
    gray_levels : int, default=256
        Number of grey levels of the Haralick co-occurrence matrices (2 to
        256), CellProfiler's fixed quantisation (see Notes).
    gabor_angles : int, default=4
        Number of Gabor orientations, ``pi * k / gabor_angles``.
    lbp_points : int, default=8
        Number of circularly symmetric neighbours of the LBP.
    lbp_radius : float, default=1
        Radius of the LBP circle, in pixels.
    granularity_spectrum_length : int, default=16
        Number of granular spectrum components (CellProfiler's "range of
        the granular spectrum").
    granularity_subsample_size : float, default=0.25
        Subsampling factor of the granularity measurement.
    granularity_image_sample_size : float, default=0.25
        Further subsampling factor of the background estimate.
    granularity_element_size : int, default=10
        Radius of the disk that estimates the background, after subsampling.
    compartment : str, optional
        Prefix for the feature names, e.g. ``"Nuclei"``.
    n_jobs : int, default=None
        Number of jobs to run in parallel over chunks of cells.
        ``None`` means 1 unless in a :obj:`joblib.parallel_backend` context.
        ``-1`` means using all processors.

    Attributes
    ----------
    channels_ : tuple of str
        The channels measured.
    families_ : tuple of str
        The feature families computed, in output order.
    feature_names_out_ : ndarray of str
        Output names: ``Texture_<Feature>_<Channel>_<scale>_<direction>_<gray_levels>``
        (Haralick, e.g. ``Texture_Contrast_DNA_3_00_256``),
        ``Texture_Gabor_<Channel>_<scale>``,
        ``Texture_GaborEnergy_<Channel>_<scale>_<orientation>``,
        ``Texture_LBP_<bin>_<Channel>_<points>_<radius>`` and
        ``Granularity_<k>_<Channel>``.
    n_features_in_ : int
        Number of channels of the cells seen in ``fit``.
    channel_names_in_ : tuple of str
        Channel names of the cells seen in ``fit``.

    See Also
    --------
    featcell.Intensity : intensity statistics and radial distribution.

    Notes
    -----
    *Haralick.* As in CellProfiler, intensities are quantised for the whole
    image with one fixed mapping (``rint(255 x)``, then truncated to
    ``gray_levels`` levels; values outside [0, 1] are clipped), not stretched
    per cell. Co-occurrences count the pairs of the cell's pixels ``scale``
    pixels apart in the directions ``_00`` (0, 1), ``_01`` (1, 1), ``_02``
    (1, 0) and ``_03`` (1, -1) (row, column), symmetrically; pairs with a
    pixel of level 0 are ignored. The features are mahotas' definitions
    (``mahotas.features.haralick``): Variance is that of the row marginal,
    SumVariance uses SumAverage, DifferenceVariance is the variance of the
    ``p_{|x-y|}`` vector over ``max level + 1`` entries, entropies are in
    bits, and InfoMeas1/2 use ``HXY1 = HXY2 = 2 HX`` (exact for a symmetric
    matrix). A cell with no valid pair in some direction (e.g. a cell
    narrower than the scale, a one-pixel cell, or one whose pixels are all
    quantised to 0) gets NaN for all features at that scale, as in
    CellProfiler. A uniform cell gets Contrast 0, AngularSecondMoment 1,
    Entropy 0 and Correlation 1.

    *Gabor.* CellProfiler's (3.x) definition: per cell, not a filter: the
    cell's intensities rescaled to [0, 1], centred, are correlated with a
    Gabor wavelet centred on the cell's centroid (wavelength ``scale``,
    sigma ``sqrt(area / pi) / 3``); the score is the largest modulus over the
    ``gabor_angles`` orientations. ``gabor_energy`` is instead the mean, over
    the cell's pixels, of the modulus of ``skimage.filters.gabor(image,
    frequency=1 / scale, theta=pi * k / gabor_angles)`` computed on the cell's
    crop with ``mode="reflect"``: the same as on the whole image whenever the
    kernel's half-width (``3 sigma``, about ``1.7 * scale`` pixels) is within
    the crop margin, including for cells cut by the image border.

    *LBP.* scikit-image's ``local_binary_pattern(method="uniform")`` of the
    channel, histogram over the cell's pixels normalised to sum 1. Bins ``0``
    ... ``lbp_points`` count the patterns with at most two bit changes by
    their number of neighbours not darker than the centre (bin
    ``lbp_points``: every pixel of a flat region), bin ``lbp_points + 1`` the
    other patterns. A neighbour that ties with the centre always sets its
    bit; scikit-image interpolates at absolute coordinates, so that its
    answer for ties depends on where the pixel lies in the image
    (:func:`local_binary_pattern`). Neighbours come from the crop (0 beyond
    the image), so they match the whole image when the crop margin is at
    least ``lbp_radius + 1``.

    *Granularity.* As CellProfiler, on the whole image the cells were cut
    from (:meth:`CellSet.fields`: cells from :meth:`CellSet.from_labels`,
    :meth:`CellSet.from_boxes` or :func:`featcell.read_cells`): its
    background, a grey opening about 160 pixels wide at the default
    settings, and its reconstructions follow bright structures across the
    image, and each cell reports the loss of its own mean. Cells known only
    by their crops (:meth:`CellSet.from_crops`) take their crop as the image
    and their mask as the only object (cp_measure's ``get_granularity`` on
    the crop). Cells of an image whose subsampled size is below 2 rows or
    columns get NaN, as in CellProfiler.

    References
    ----------
    .. [1] Haralick, Shanmugam and Dinstein, "Textural features for image
       classification", IEEE Trans. Syst. Man Cybern. 3, 610-621 (1973).
    .. [2] Ojala, Pietikainen and Maenpaa, "Multiresolution gray-scale and
       rotation invariant texture classification with local binary
       patterns", IEEE TPAMI 24, 971-987 (2002).
    .. [3] Stirling et al., "CellProfiler 4: improvements in speed, utility
       and usability", BMC Bioinformatics 22, 433 (2021).
    .. [4] cp_measure: https://github.com/afermg/cp_measure

    Examples
    --------
    >>> import numpy as np
    >>> from featcell import CellSet
    >>> from featcell.features.texture import Texture
    >>> image = np.zeros((24, 24)); image[4:20, 4:20] = 0.5
    >>> image[4:20:2, 4:20] = 0.25  # horizontal stripes, one pixel thick
    >>> labels = np.zeros((24, 24), dtype=int); labels[4:20, 4:20] = 1
    >>> cells = CellSet.from_labels(image, labels, channels=["DNA"])
    >>> table = Texture(features="haralick", scales=[1]).set_output(transform="pandas")
    >>> row = table.fit_transform(cells).iloc[0]
    >>> float(row["Texture_Contrast_DNA_1_00_256"]), float(row["Texture_Contrast_DNA_1_02_256"])
    (0.0, 4096.0)
    """

    _families = ("haralick", "gabor", "gabor_energy", "lbp", "granularity")

    _parameter_constraints: ClassVar[dict] = {
        "gray_levels": [Interval(Integral, 2, 256, closed="both")],
        "gabor_angles": [Interval(Integral, 1, None, closed="left")],
        "lbp_points": [Interval(Integral, 1, 32, closed="both")],
        "lbp_radius": [Interval(Real, 0, None, closed="neither")],
        "granularity_spectrum_length": [Interval(Integral, 1, None, closed="left")],
        "granularity_subsample_size": [Interval(Real, 0, None, closed="neither")],
        "granularity_image_sample_size": [Interval(Real, 0, None, closed="neither")],
        "granularity_element_size": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        features=None,
        *,
        channels=None,
        scales=(3,),
        gray_levels=256,
        gabor_angles=4,
        lbp_points=8,
        lbp_radius=1,
        granularity_spectrum_length=16,
        granularity_subsample_size=0.25,
        granularity_image_sample_size=0.25,
        granularity_element_size=10,
        compartment=None,
        n_jobs=None,
    ):
        self.features = features
        self.channels = channels
        self.scales = scales
        self.gray_levels = gray_levels
        self.gabor_angles = gabor_angles
        self.lbp_points = lbp_points
        self.lbp_radius = lbp_radius
        self.granularity_spectrum_length = granularity_spectrum_length
        self.granularity_subsample_size = granularity_subsample_size
        self.granularity_image_sample_size = granularity_image_sample_size
        self.granularity_element_size = granularity_element_size
        self.compartment = compartment
        self.n_jobs = n_jobs

    def _check_params(self):
        self.scales_ = _check_scales(self.scales)

    # ------------------------------------------------------------------ names
    def _feature_names(self):
        return [name for family in self.families_ for ch in self.channels_
                for name in self._family_names(family, ch)]

    def _family_names(self, family, channel):
        if family == "haralick":
            return haralick_names(channel, self.scales_, self.gray_levels)
        if family == "gabor":
            return gabor_names(channel, self.scales_)
        if family == "gabor_energy":
            return gabor_energy_names(channel, self.scales_, self.gabor_angles)
        if family == "lbp":
            return lbp_names(channel, self.lbp_points, self.lbp_radius)
        return granularity_names(channel, self.granularity_spectrum_length)

    # ------------------------------------------------------------------ compute
    def _compute(self, cells):
        pixels = CellPixels(cells)
        columns = {}
        for family in self.families_:
            for ch in self.channels_:
                columns.update(self._family_columns(family, cells, pixels, ch))
        return columns

    def _family_columns(self, family, cells, pixels, channel):
        c = self._channel_index(channel)
        if family == "haralick":
            return haralick(pixels, pixels.values(c), channel, self.scales_, self.gray_levels)
        if family == "gabor":
            return cellprofiler_gabor(
                pixels, pixels.values(c), channel, self.scales_, self.gabor_angles
            )
        if family == "gabor_energy":
            return gabor_energy(pixels, c, channel, self.scales_, self.gabor_angles)
        if family == "lbp":
            return lbp(pixels, c, channel, self.lbp_points, self.lbp_radius)
        return granularity(
            cells, pixels, c, channel,
            self.granularity_spectrum_length,
            self.granularity_subsample_size,
            self.granularity_image_sample_size,
            self.granularity_element_size,
        )
