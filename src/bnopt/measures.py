"""Per-run measures and constants that more than one study in experiments/ reads (a study's own helpers
stay in its file)."""

from __future__ import annotations

CONV_LAYERS = tuple(range(1, 14))  # VGG16's conv layers #1..#13 (the classifier, #14, is left out): B7, B9
