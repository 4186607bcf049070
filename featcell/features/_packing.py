"""Deprecated location of :class:`ShelfPacking`, now in :mod:`featcell.features._pixels`.

A thin alias kept until texture moves onto ``_pixels``; remove at merge.
"""

from ._pixels import ShelfPacking

__all__ = ["ShelfPacking"]
