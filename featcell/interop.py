"""The tools that come after featcell: pycytominer and CellProfiler tables, AnnData, napari.

* **CellProfiler / pycytominer.** featcell tables keep positions and object relationships
  in ``Metadata_*`` columns while they are in Python. Written for others
  (``featcell extract``), they take CellProfiler's names: ``Cells_Location_Center_X``,
  ``Nuclei_Parent_Cells``, ``Cells_Children_Nuclei_Count``; CNN embeddings get the
  compartment prefix too, so pycytominer finds every feature with its defaults.
  :func:`cellprofiler_names` maps one way and :func:`featcell_names` back.
* **scverse.** :func:`to_anndata` gives an :class:`anndata.AnnData`: ``obs`` the
  metadata indexed by cell id, ``var`` the features with their compartment, family
  and channel, ``obsm`` the CNN embeddings and the positions.
* **napari.** :func:`napari_features` turns a results table into a Labels layer's
  ``features``, and :func:`cells_to_labels` rebuilds a label image from cells.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .importance import FAMILY_PREFIXES  # feature category -> family

__all__ = [
    "cells_to_labels",
    "cellprofiler_names",
    "featcell_names",
    "napari_features",
    "parse_feature_name",
    "to_anndata",
]

_NAME = r"[A-Za-z][A-Za-z0-9]*"
# object measurements CellProfiler writes besides the features: position and relationships
_OBJECT_COLUMN = re.compile(
    rf"^(?P<compartment>{_NAME})_(?P<what>Location_Center_[XYZ]|Parent_{_NAME}|"
    rf"Children_{_NAME}_Count|Number_Object_Number)$"
)
_METADATA = "Metadata_"
# what else says which image or object a row is, or where it lies, rather than what the cell
# is: CellProfiler's ids (its per-object tables carry them unprefixed), every Location_*
# and AreaShape_Center_*; as features they would let a model learn the image (a leak)
_IDENTITY_COLUMN = re.compile(
    rf"^(?:{_NAME}_)?(?:ImageNumber|ObjectNumber|TableNumber|Number_Object_Number|"
    rf"Location_\w+|AreaShape_Center_[XYZ]|Parent_{_NAME}|Children_{_NAME}_Count)$"
)


# ---------------------------------------------------------------------- CellProfiler names
def cellprofiler_names(columns, compartment="Cells"):
    """CellProfiler's names for the columns of a featcell table.

    ``Metadata_Location_Center_X/Y`` (the cell's centre) become
    ``<compartment>_Location_Center_X/Y``; the relationship and position
    columns of other compartments (``Metadata_Nuclei_Parent_Cells``,
    ``Metadata_Cells_Children_Nuclei_Count``, ...) lose their ``Metadata_``;
    CNN embeddings (``CNN_*``) get the compartment prefix. Other columns keep
    their names.

    Parameters
    ----------
    columns : iterable of str
        Column names of a featcell table.
    compartment : str, default="Cells"
        The compartment of one row (for cells with compartments, their parent).

    Returns
    -------
    dict
        Old name to new name, for the columns that change.

    See Also
    --------
    featcell_names : the inverse.

    Examples
    --------
    >>> from featcell.interop import cellprofiler_names
    >>> cellprofiler_names(["Metadata_Location_Center_X", "Metadata_Nuclei_Parent_Cells",
    ...                     "Metadata_Well", "CNN_Net_0000"])
    {'Metadata_Location_Center_X': 'Cells_Location_Center_X', \
'Metadata_Nuclei_Parent_Cells': 'Nuclei_Parent_Cells', 'CNN_Net_0000': 'Cells_CNN_Net_0000'}
    """
    if not isinstance(compartment, str) or not re.fullmatch(_NAME, compartment):
        raise ValueError(
            f"compartment must be letters and digits such as 'Cells', got {compartment!r}"
        )
    mapping = {}
    for column in map(str, columns):
        if column in ("Metadata_Location_Center_X", "Metadata_Location_Center_Y"):
            mapping[column] = f"{compartment}_{column.removeprefix(_METADATA)}"
        elif column.startswith(_METADATA) and _OBJECT_COLUMN.match(column.removeprefix(_METADATA)):
            mapping[column] = column.removeprefix(_METADATA)
        elif column.startswith("CNN_"):
            mapping[column] = f"{compartment}_{column}"
    return mapping


def featcell_names(columns):
    """featcell's names for the columns of a CellProfiler-named table (inverse of the above).

    Position and relationship columns go back to ``Metadata_*`` (the cell's
    own centre to ``Metadata_Location_Center_X/Y`` when a ``*_CNN_*`` or
    prefixed feature shows which compartment the rows are), and
    ``<compartment>_CNN_*`` to ``CNN_*``. CellProfiler's ids (``ImageNumber``,
    ``ObjectNumber``, ``TableNumber``), every ``Location_*`` and
    ``AreaShape_Center_*`` column become ``Metadata_*`` too, with or without a
    compartment prefix: they say which image or where, not what the cell is,
    and as features they would let a model learn the image. A new name that
    another column holds or gets gains ``_2``, ``_3``, ... (``ImageNumber``
    beside ``Metadata_ImageNumber``).

    Parameters
    ----------
    columns : iterable of str

    Returns
    -------
    dict
        Old name to new name, for the columns that change.

    Examples
    --------
    >>> from featcell.interop import featcell_names
    >>> featcell_names(["Cells_Location_Center_X", "Cells_CNN_Net_0000", "Cells_AreaShape_Area"])
    {'Cells_Location_Center_X': 'Metadata_Location_Center_X', 'Cells_CNN_Net_0000': 'CNN_Net_0000'}
    """
    every = [str(c) for c in columns]
    columns = [c for c in every if not c.startswith(_METADATA)]  # metadata kept as they are
    cnn = {c.split("_", 1)[0] for c in columns if re.match(rf"^{_NAME}_CNN_", c)}
    parent = _row_compartment(columns)
    mapping = {}
    for column in columns:
        match = _OBJECT_COLUMN.match(column)
        if match and match["compartment"] == parent and match["what"].startswith("Location"):
            mapping[column] = f"{_METADATA}{match['what']}"
        elif match:
            mapping[column] = f"{_METADATA}{column}"
        elif column.split("_", 1)[0] in cnn and column.split("_", 2)[1:2] == ["CNN"]:
            mapping[column] = column.split("_", 1)[1]
        elif _IDENTITY_COLUMN.match(column):
            mapping[column] = f"{_METADATA}{column}"
    names = set(every) - set(mapping)  # a name taken (ImageNumber beside Metadata_ImageNumber)
    for column, name in mapping.items():  # gets _2, _3, ...: two columns never share one
        k = 2
        while name in names:
            name, k = f"{mapping[column]}_{k}", k + 1
        mapping[column] = name
        names.add(name)
    return mapping


def _row_compartment(columns):
    """The compartment a table's rows are: the one with children, else the one with a
    location; of several with a location, the one of the ``*_CNN_*`` columns, else the
    one with the most feature columns (``Cells_AreaShape_Area``), when one is first."""
    from collections import Counter

    for column in columns:
        match = _OBJECT_COLUMN.match(column)
        if match and match["what"].startswith("Children_"):
            return match["compartment"]
    located = {m["compartment"] for m in map(_OBJECT_COLUMN.match, columns)
               if m and m["what"].startswith("Location")}
    if len(located) <= 1:
        return next(iter(located), None)
    features = [c.split("_", 1)[0] for c in columns if not _OBJECT_COLUMN.match(c)
                and c.split("_", 1)[0] in located]
    cnn = {c.split("_", 1)[0] for c in columns if c.split("_", 2)[1:2] == ["CNN"]} & located
    if len(cnn) == 1:
        return cnn.pop()
    ranked = Counter(features).most_common(2)
    if ranked and (len(ranked) == 1 or ranked[0][1] > ranked[1][1]):
        return ranked[0][0]
    return None


def parse_feature_name(name, channels=None):
    """Split a CellProfiler feature name into compartment, category, family and channels.

    Parameters
    ----------
    name : str
        ``[<Compartment>_]<Category>_<Feature>[_<Channel>][_<params>]``, e.g.
        ``Nuclei_Texture_Contrast_DNA_3_00_256``.
    channels : collection of str, optional
        The channel names; without them the channel is the token that
        follows the feature where the category has one (not for ``AreaShape``).

    Returns
    -------
    dict
        ``compartment`` ("" when unprefixed), ``category``, ``family``
        (morphology, intensity, texture, colocalization, cnn or ""),
        ``feature``, ``channel`` and ``channel_2`` ("" when none).

    Examples
    --------
    >>> from featcell.interop import parse_feature_name
    >>> parse_feature_name("Nuclei_Correlation_K_DNA_Actin", channels=["DNA", "Actin"])["channel_2"]
    'Actin'
    >>> parse_feature_name("Cells_Texture_Contrast_DNA_3_00_256")["channel"]
    'DNA'
    """
    tokens = str(name).split("_")
    compartment = ""
    if len(tokens) > 1 and tokens[0] not in FAMILY_PREFIXES and tokens[1] in FAMILY_PREFIXES:
        compartment, tokens = tokens[0], tokens[1:]
    category = tokens[0]
    rest = tokens[1:]
    found = []
    if channels is not None:
        found = [t for t in rest if t in set(channels)]
    elif category in ("Intensity", "RadialDistribution", "Texture", "Correlation"):
        # <Feature>[_X|_Y|_<n>]_<Channel>...: the first token that starts with a letter and is
        # not an axis; correlation names hold two
        found = [t for t in rest[1:] if re.fullmatch(_NAME, t) and t not in ("X", "Y", "Z")]
        found = found[:2] if category == "Correlation" else found[:1]
    elif category == "Granularity":
        found = rest[1:2]
    feature = rest[0] if rest else ""
    if category == "Texture" and feature == "LBP":
        feature = "_".join(rest[:2])
    return {
        "compartment": compartment,
        "category": category,
        "family": FAMILY_PREFIXES.get(category, ""),
        "feature": feature,
        "channel": found[0] if found else "",
        "channel_2": found[1] if len(found) > 1 else "",
    }


# ---------------------------------------------------------------------- AnnData
def to_anndata(table, *, channels=None):
    """A featcell or CellProfiler per-cell table as an :class:`anndata.AnnData`.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per cell: a table written by ``featcell extract`` or
        :func:`featcell.score_images`, or features from
        ``set_output(transform="pandas")`` (indexed by cell id) joined with
        :attr:`featcell.CellSet.metadata`.
    channels : collection of str, optional
        Channel names, to parse the channel of every feature exactly.

    Returns
    -------
    anndata.AnnData
        ``X`` (float32) holds the classical features; ``var`` their
        ``compartment``, ``category``, ``family``, ``feature``, ``channel``
        and ``channel_2`` (categoricals). ``obs`` holds everything else
        (``Metadata_*``, relationships, predictions), indexed by the string
        cell id ``"<image id>:<object number>"``. ``obsm["X_cnn"]`` holds CNN
        embeddings, ``obsm["spatial"]`` the cells' centres ``(x, y)`` in
        pixels (as squidpy expects) and ``obsm["spatial_<Compartment>"]``
        those of other compartments.

    Raises
    ------
    ImportError
        If anndata is not installed.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from featcell import to_anndata
    >>> table = pd.DataFrame({"Metadata_ImageID": ["a.tif", "a.tif"],
    ...                       "Metadata_ObjectNumber": [1, 2],
    ...                       "Cells_Location_Center_X": [3.0, 9.0],
    ...                       "Cells_Location_Center_Y": [4.0, 1.0],
    ...                       "Cells_AreaShape_Area": [40.0, 52.0],
    ...                       "Cells_Intensity_MeanIntensity_DNA": [0.2, 0.5]})
    >>> adata = to_anndata(table)
    >>> adata.obs_names.tolist(), adata.var["channel"].tolist(), adata.obsm["spatial"][1]
    (['a.tif:1', 'a.tif:2'], ['', 'DNA'], array([9., 1.]))
    """
    try:
        import anndata
    except ImportError as exc:  # pragma: no cover - anndata is in the test extra
        raise ImportError(
            "to_anndata needs anndata: pip install anndata (or featcell[test])"
        ) from exc
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame, got {type(table).__name__}")
    if table.columns.duplicated().any():
        repeated = sorted(set(table.columns[table.columns.duplicated()]))
        raise ValueError(f"table has repeated columns: {repeated}")
    table = table.rename(columns={c: str(c) for c in table.columns})
    if "Metadata_Location_Center_X" in table:  # featcell's names: CellProfiler's, as written
        stripped = [c.removeprefix(_METADATA) for c in table.columns]
        table = table.rename(columns=cellprofiler_names(
            table.columns, _row_compartment(stripped) or "Cells"))
    parent = _row_compartment(table.columns)

    location, cnn, features, obs = {}, [], [], []
    for column in table.columns:
        match = _OBJECT_COLUMN.match(column)
        own = re.fullmatch(r"Location_Center_([XYZ])", column)  # CellProfiler's unprefixed
        if match and match["what"].startswith("Location_Center_"):
            location.setdefault(match["compartment"], {})[match["what"][-1]] = column
        elif own:
            location.setdefault(None, {})[own[1]] = column
        elif re.match(rf"^(?:{_NAME}_)?CNN_", column) and _is_number(table[column]):
            cnn.append(column)
        elif (not column.startswith(_METADATA) and not match and _is_number(table[column])
              and not _IDENTITY_COLUMN.match(column) and parse_feature_name(column)["family"]):
            features.append(column)  # (positions and ids say where, not what: obs)
        else:
            obs.append(column)

    obs_frame = table[obs].copy()
    obs_frame.index = _cell_ids(table)
    for column in obs_frame.columns:  # h5ad stores strings, not mixed Python objects
        values = obs_frame[column]
        if values.dtype == object:  # (missing values stay missing, not "None" or "nan")
            obs_frame[column] = values.astype(str).where(values.notna(), None)
    var = pd.DataFrame([parse_feature_name(c, channels) for c in features], index=features)
    var = var.reindex(columns=["compartment", "category", "family", "feature", "channel",
                               "channel_2"]).fillna("").astype("category")
    X = table[features].to_numpy(np.float32) if features else np.empty((len(table), 0), np.float32)
    obsm = {}
    if cnn:
        obsm["X_cnn"] = table[cnn].to_numpy(np.float32)
    for compartment, axes in location.items():
        if "X" in axes and "Y" in axes:
            own = compartment is None or (compartment == parent and None not in location)
            key = "spatial" if own or len(location) == 1 else f"spatial_{compartment}"
            obsm[key] = table[[axes["X"], axes["Y"]]].to_numpy(np.float64)
    adata = anndata.AnnData(X=X, obs=obs_frame, var=var, obsm=obsm)
    adata.strings_to_categoricals()  # as h5ad stores them, so a round trip changes nothing
    if cnn:
        adata.uns["cnn_features"] = list(cnn)
    return adata


def _is_number(series):
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _cell_ids(table):
    """``"<image id>:<object number>"`` per row, else the table's own index as strings."""
    if {"Metadata_ImageID", "Metadata_ObjectNumber"} <= set(table.columns):
        number = table["Metadata_ObjectNumber"]
        if pd.api.types.is_float_dtype(number) and (number.dropna() % 1 == 0).all():
            number = number.astype("Int64")  # (a table read back from CSV: 1.0 is object 1)
        ids = table["Metadata_ImageID"].astype(str) + ":" + number.astype(str)
        return pd.Index(ids.to_numpy(dtype=object), name="cell_id")
    return pd.Index(table.index.astype(str), name="cell_id")


# ---------------------------------------------------------------------- napari
def napari_features(table, image_id=None):
    """A napari Labels layer's ``features`` from a per-cell results table.

    napari shows, for the label under the cursor, the row whose ``index``
    equals the label value; featcell's label value is
    ``Metadata_ObjectNumber``.

    Parameters
    ----------
    table : pandas.DataFrame
        Per-cell results (``featcell score`` or ``featcell extract``), with
        ``Metadata_ObjectNumber`` and, for several images,
        ``Metadata_ImageID``.
    image_id : str, optional
        The image whose cells to keep (its file name); required when the
        table holds several images.

    Returns
    -------
    pandas.DataFrame
        ``index`` (the label value) then every other column of the image's
        rows, ``Metadata_`` prefixes dropped, sorted by label.

    Examples
    --------
    >>> import pandas as pd
    >>> from featcell import napari_features
    >>> table = pd.DataFrame({"Metadata_ImageID": ["a.tif", "a.tif", "b.tif"],
    ...                       "Metadata_ObjectNumber": [7, 2, 1],
    ...                       "Prediction": ["dead", "live", "live"]})
    >>> napari_features(table, "a.tif")[["index", "Prediction"]].values.tolist()
    [[2, 'live'], [7, 'dead']]
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame, got {type(table).__name__}")
    if "Metadata_ObjectNumber" not in table:
        raise ValueError("table has no Metadata_ObjectNumber column (the label value of each cell)")
    rows = table
    if "Metadata_ImageID" in table:
        images = table["Metadata_ImageID"].astype(str).unique()
        if image_id is None and len(images) > 1:
            raise ValueError(
                f"table holds {len(images)} images; pass image_id= one of {list(images[:5])}"
            )
        if image_id is not None:
            rows = table[table["Metadata_ImageID"].astype(str) == os.path.basename(str(image_id))]
            if rows.empty:
                raise ValueError(
                    f"no rows for image_id {image_id!r}; the table has {list(images[:5])}"
                )
    rest = [c for c in rows.columns if c not in ("Metadata_ImageID", "Metadata_ObjectNumber")]
    names = [str(c) for c in rest]
    present, taken = set(names), {"index"}
    new_names = []
    for name in names:
        bare = name.removeprefix(_METADATA)  # the prefix stays where dropping it collides
        new = name if bare != name and bare in present else bare
        k = 2
        while new in taken:  # ("index" of a table after reset_index: "index_2")
            new, k = f"{bare}_{k}", k + 1
        taken.add(new)
        new_names.append(new)
    out = pd.concat([rows["Metadata_ObjectNumber"].rename("index"),
                     rows[rest].set_axis(new_names, axis=1)], axis=1)
    return out.sort_values("index", kind="stable").reset_index(drop=True)


def cells_to_labels(cells, shape=None):
    """The label image of the cells of one image: each mask painted with its object number.

    Parameters
    ----------
    cells : CellSet
        Cells of one image (e.g. one item of :func:`featcell.iter_cells`).
    shape : tuple of int, optional
        ``(H, W)`` of the image; default the smallest that holds every crop.

    Returns
    -------
    labels : (H, W) ndarray of int32
        ``Metadata_ObjectNumber`` on each cell's mask; where boxes overlap,
        the later cell wins.

    Examples
    --------
    >>> import numpy as np
    >>> from featcell import CellSet
    >>> from featcell.interop import cells_to_labels
    >>> labels = np.zeros((12, 12), np.int32); labels[2:5, 2:5] = 4; labels[7:10, 6:9] = 9
    >>> cells = CellSet.from_labels(np.ones((12, 12)), labels)
    >>> bool((cells_to_labels(cells, (12, 12)) == labels).all())
    True
    """
    from .cells import CellSet

    if not isinstance(cells, CellSet):
        raise TypeError(f"cells must be a featcell.CellSet, got {type(cells).__name__}")
    if len(cells) and cells.metadata["Metadata_ImageID"].nunique() > 1:
        raise ValueError("cells come from several images; pass the cells of one image")
    origins, sizes = cells.crop_origins, cells.crop_shapes
    if shape is None:
        shape = tuple((origins + sizes).max(axis=0)) if len(cells) else (0, 0)
    labels = np.zeros(shape, np.int32)
    numbers = cells.metadata["Metadata_ObjectNumber"].to_numpy()
    for i, ((y, x), (h, w)) in enumerate(zip(origins, sizes)):
        labels[y : y + h, x : x + w][cells.mask(i)] = numbers[i]
    return labels


def _write_labels(labels, folder, image_path):
    """Write ``<image stem>_labels.tif`` into ``folder`` (atomic: a temporary file, renamed)."""
    import tifffile

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{Path(image_path).stem}_labels.tif"
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tifffile.imwrite(tmp, np.asarray(labels, np.int32), compression="zlib")
    os.replace(tmp, target)
    return target
