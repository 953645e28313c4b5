"""The training material's citations resolve inside the project: docs/protocol.md and the
bibliography docs/sources.md ship with it, and every [Sn] a notebook cites has an entry there."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def markdown_of_notebooks() -> str:
    text = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        text += ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]
    return "\n".join(text)


def test_sources_md_is_generated_from_protocol_md():
    assert load("make_sources").main(["--check"]) == 0, "run: python scripts/make_sources.py"


def test_every_citation_links_to_an_entry_with_an_address_or_a_reason():
    sources = (DOCS / "sources.md").read_text(encoding="utf-8")
    entries = dict(re.findall(r"^## (S\d+[a-z]?)\n\n.*?\n\n(\* .*?)(?=\n\n## |\Z)", sources, re.S | re.M))
    cited = set(re.findall(r"\[\[(S\d+[a-z]?)\]\]\(\.\./docs/sources\.md#(s\d+[a-z]?)\)", markdown_of_notebooks()))
    assert cited, "the notebooks cite no source"
    for tag, anchor in cited:
        assert anchor == tag.lower()
        assert tag in entries, f"{tag} cited but not in docs/sources.md"
        assert entries[tag].startswith(("* <http", "* no public address")), tag
    bare = re.findall(r"(?<!\[)\[S\d+[a-z]?\](?!\()", markdown_of_notebooks())
    assert not bare, f"citations without a link: {bare[:5]}"


def test_linked_documents_ship_with_the_project():
    targets = set(re.findall(r"\]\((\.\./docs/[^)#]+)", markdown_of_notebooks()))
    assert {"../docs/protocol.md", "../docs/sources.md"} <= targets
    for target in targets:
        assert (ROOT / "notebooks" / target).resolve().is_file(), target


def test_github_entries_link_the_file_at_its_commit():
    module = load("make_sources")
    links = module.addresses("rapid7/metasploit-framework `lib/x/vmauthd.rb` (1db709bf)")
    assert links == ["https://github.com/rapid7/metasploit-framework/blob/1db709bf/lib/x/vmauthd.rb"]
    assert module.addresses("Forum post (index id 123; page address not reported)") == []


def test_notebook_pages_are_rendered_from_the_current_notebooks():
    """notebooks/html/*.html (outputs included, for readers without Jupyter) were made from the
    notebooks as committed: each page records its notebook's SHA-256."""
    module = load("render_notebooks")
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert [module.page_of(p).name for p in notebooks] == sorted(p.name for p in module.HTML.glob("*.html"))
    assert module.stale() == [], "run: python scripts/render_notebooks.py"
    linked = 0
    for path in notebooks:
        page = module.page_of(path).read_text(encoding="utf-8")
        assert 'class="jp-OutputArea' in page or "jp-RenderedText" in page  # outputs, not just sources
        targets = re.findall(r'href="(\.\./[^"#]+)', page)
        linked += len(targets)
        for target in targets:  # relative links work from notebooks/html/
            assert (module.HTML / target).resolve().is_file(), (path.name, target)
    assert linked, "no page links the docs"
