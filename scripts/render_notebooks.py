#!/usr/bin/env python3
"""Render every notebook to HTML with its outputs, for readers without Jupyter.

Runs each notebook in notebooks/ top to bottom (nbclient, the python3 kernel, inside notebooks/
so that ``../samples`` resolves) and writes notebooks/html/NAME.html with nbconvert.  Each page
records the SHA-256 of the notebook it was made from (``<meta name="dissect902-notebook-sha256">``):
``--check`` (and the test suite) fail when a notebook changed and its page was not rendered again.
Needs nbconvert (``pip install nbconvert``); ``--check`` needs nothing.

    python scripts/render_notebooks.py            # execute and render all four
    python scripts/render_notebooks.py --check    # exit 1 if a page is missing or stale
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
HTML = NOTEBOOKS / "html"
META = "dissect902-notebook-sha256"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def page_of(path: Path) -> Path:
    return HTML / (path.stem + ".html")


def recorded_digest(page: Path) -> str | None:
    if not page.exists():
        return None
    m = re.search(rf'<meta name="{META}" content="([0-9a-f]{{64}})"', page.read_text(encoding="utf-8"))
    return m.group(1) if m else None


def stale() -> list[str]:
    return [p.name for p in sorted(NOTEBOOKS.glob("*.ipynb")) if recorded_digest(page_of(p)) != digest(p)]


def render(path: Path, timeout: int = 300) -> Path:
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    stamp = f'<meta name="{META}" content="{digest(path)}">'
    body = body.replace("<head>", "<head>\n" + stamp, 1)
    body = body.replace('href="../docs/', 'href="../../docs/')  # the pages live one folder deeper
    HTML.mkdir(exist_ok=True)
    page = page_of(path)
    page.write_text(body, encoding="utf-8")
    return page


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a page is missing or older than its notebook")
    ap.add_argument("names", nargs="*", help="only these notebooks (file names)")
    args = ap.parse_args(argv)
    if args.check:
        out = stale()
        if out:
            print("HTML out of date (run python scripts/render_notebooks.py): " + ", ".join(out), file=sys.stderr)
            return 1
        return 0
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        if args.names and path.name not in args.names:
            continue
        print(f"wrote {render(path).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
