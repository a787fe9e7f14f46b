import numpy as np
import pytest

from bsarec.data.dataset import SequenceDataset


@pytest.fixture
def catalogue():
    """Four items with original ids a, b, c, d (internal 1..4), in two users' sequences."""
    return SequenceDataset(
        [np.array([1, 2, 3]), np.array([2, 3, 4])], ["u1", "u2"], [None, "a", "b", "c", "d"]
    )
