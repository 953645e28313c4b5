"""Output renderers (issue 15 layout): html.py, the self-contained HTML report (issue 12)."""
