"""Shared fixtures: tiny hand-made cells and the optional real data sets."""

from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data():
    """Path to ../shared/data; skips the test when the data sets are absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data sets not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def two_objects():
    """A 2-channel 40x40 image with a 6x6 square (id 3) and a 10x8 rectangle (id 8)."""
    labels = np.zeros((40, 40), dtype=np.uint16)
    labels[5:11, 5:11] = 3
    labels[20:30, 24:32] = 8
    rng = np.random.default_rng(0)
    image = rng.integers(0, 50, size=(40, 40, 2)).astype(np.uint8)
    image[labels > 0] += 150
    return image, labels
