"""Per-run measures and constants that more than one study in experiments/ reads (a study's own helpers
stay in its file)."""

from __future__ import annotations

import numpy as np
import pandas as pd

CONV_LAYERS = tuple(range(1, 14))  # VGG16's conv layers #1..#13 (the classifier, #14, is left out): B7, B9


def median(s: pd.Series) -> float:
    """The median of a probe's series over its finite values; NaN when none (C5, C6, C8, B2)."""
    s = s.replace([np.inf, -np.inf], np.nan).dropna()
    return float(s.median()) if len(s) else float("nan")
