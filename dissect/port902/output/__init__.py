"""Stage 6 — results out: pandas DataFrames with declared columns, renderers, charts."""
