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
from ._pixels import cell_pixels
from .gabor import cellprofiler_gabor, gabor_energy, gabor_energy_names, gabor_names
from .granularity import granularity, granularity_names
from .haralick import HARALICK_FEATURES, haralick, haralick_names
from .lbp import lbp, lbp_names

__all__ = ["HARALICK_FEATURES", "Texture"]


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
        Jobs in parallel over chunks of cells: ``None`` is 1 (unless in a
        :obj:`joblib.parallel_backend` context), ``-1`` all processors.

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
    *Haralick* (:mod:`~featcell.features.haralick`). As in CellProfiler,
    intensities are quantised with one fixed mapping (``rint(255 x)``,
    truncated to ``gray_levels`` levels, clipped to [0, 1]), not stretched
    per cell; co-occurrences count the cell's pixel pairs ``scale`` apart in
    the directions ``_00`` (0, 1), ``_01`` (1, 1), ``_02`` (1, 0) and ``_03``
    (1, -1) (row, column), symmetrically, ignoring pairs with a pixel of
    level 0; the features are mahotas' definitions. A cell with no valid
    pair in some direction (narrower than the scale, one pixel, all pixels
    at level 0) gets NaN for all features at that scale, as in CellProfiler.

    *Gabor* (:mod:`~featcell.features.gabor`). ``gabor`` is CellProfiler
    3's per-cell score (a wavelet centred on the cell, sigma ``sqrt(area /
    pi) / 3``, largest modulus over ``gabor_angles`` orientations);
    ``gabor_energy`` is the cell's mean modulus of
    ``skimage.filters.gabor(crop, 1 / scale, pi * k / gabor_angles)``,
    the whole image's wherever the kernel (half-width about ``1.7 * scale``)
    stays within the crop margin.

    *LBP* (:mod:`~featcell.features.lbp`). scikit-image's
    ``local_binary_pattern(method="uniform")``, histogram over the cell
    normalised to sum 1: bins ``0 .. lbp_points`` count the uniform patterns
    by their neighbours not darker than the centre, bin ``lbp_points + 1``
    the others. Ties with the centre always set the bit (scikit-image's
    answer for ties depends on the pixel's position). Neighbours come from
    the crop, so they are the image's when the margin is at least
    ``lbp_radius + 1``.

    *Granularity* (:mod:`~featcell.features.granularity`). As CellProfiler,
    on the whole image the cells were cut from (:meth:`CellSet.fields`:
    :meth:`CellSet.from_labels`, :meth:`CellSet.from_boxes`,
    :func:`featcell.read_cells`), its background removed there; each cell
    reports the loss of its own mean. Cells known only by their crops
    (:meth:`CellSet.from_crops`) take their crop as the image. Cells of an
    image that subsamples below 2 rows or columns get NaN, as in CellProfiler.

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
    _whole_image_families = ("granularity",)

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
        try:
            scales = tuple(self.scales)
        except TypeError:
            scales = (self.scales,)
        if (
            not scales
            or any(isinstance(s, bool) or not isinstance(s, Integral) or s < 1 for s in scales)
            or len(set(scales)) != len(scales)
        ):
            raise ValueError(
                f"scales must be a non-empty sequence of distinct positive integers (pixels), "
                f"e.g. (3,) or (3, 5); got {scales!r}"
            )
        self.scales_ = tuple(int(s) for s in scales)

    # ------------------------------------------------------------------ names
    def _feature_names(self):
        return [
            name
            for family in self.families_
            for ch in self.channels_
            for name in self._family_names(family, ch)
        ]

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
        pixels = cell_pixels(cells)
        values = {ch: pixels.values(self._channel_index(ch)) for ch in self.channels_}
        granularity_settings = (
            self.granularity_spectrum_length,
            self.granularity_subsample_size,
            self.granularity_image_sample_size,
            self.granularity_element_size,
        )
        columns = {}
        for family in self.families_:
            for ch in self.channels_:
                c, v = self._channel_index(ch), values[ch]
                if family == "haralick":
                    columns |= haralick(pixels, v, ch, self.scales_, self.gray_levels)
                elif family == "gabor":
                    columns |= cellprofiler_gabor(pixels, v, ch, self.scales_, self.gabor_angles)
                elif family == "gabor_energy":
                    columns |= gabor_energy(pixels, c, ch, self.scales_, self.gabor_angles)
                elif family == "lbp":
                    columns |= lbp(pixels, c, ch, self.lbp_points, self.lbp_radius)
                else:
                    columns |= granularity(cells, pixels, v, c, ch, *granularity_settings)
        return columns
