"""The tree tells the data flow: each stage imports only from the stages before it (issue 15).

Also: the analysis imports nothing from the lab, ``dissect902 --help`` does not load the lab,
an optional dependency that is missing is a one-line error naming its extra, every module says
what it is for, and no module is too long to read in one sitting.
"""

from __future__ import annotations

import ast
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

import dissect.port902 as pkg
from dissect.port902.cli.main import main

ROOT = Path(pkg.__file__).parent
#: stages in data-flow order; a module may import from its own stage and the ones before it
STAGES = ("errors", "extras", "io", "net", "proto", "decrypt", "analyzers", "model", "infer", "output", "analysis", "archive", "cli")
MAX_LINES = 650  # "no module over ~600 lines"


def _modules():
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        yield path, rel


def _stage(parts: tuple[str, ...]) -> str | None:
    if not parts:
        return None
    head = parts[0].removesuffix(".py")
    return head if head in STAGES or head == "lab" else None


def _imports(path: Path, rel: Path):
    """(line, target parts under dissect.port902) for every import in the module, nested ones too."""
    tree = ast.parse(path.read_text())
    here = list(rel.parts[:-1])
    top = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)] if node.level > 1 else here
                mod = base + (node.module.split(".") if node.module else [])
                names = [mod + [a.name] for a in node.names] if not node.module else [mod]
            elif node.module and node.module.startswith("dissect.port902"):
                mod = node.module.split(".")[2:]
                names = [mod + [a.name] for a in node.names] if not mod else [mod]
            else:
                continue
            for n in names:
                yield node.lineno, tuple(n), id(node) not in top
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("dissect.port902."):
                    yield node.lineno, tuple(a.name.split(".")[2:]), id(node) not in top


def test_no_import_runs_back_up_the_pipeline():
    bad = []
    for path, rel in _modules():
        mine = _stage(rel.parts)
        if mine is None or mine == "lab":
            continue
        for line, target, lazy in _imports(path, rel):
            theirs = _stage(target)
            if theirs is None:
                continue
            if theirs == "lab" and mine == "cli" and lazy:
                continue  # the `lab` command loads the lab when it runs, and only then
            if theirs == "lab" or STAGES.index(theirs) > STAGES.index(mine):
                bad.append(f"{rel}:{line} ({mine}) imports {'.'.join(target)} ({theirs})")
    assert not bad, "imports against the data flow:\n" + "\n".join(bad)


def test_the_lab_imports_nothing_from_the_analysis_it_checks():
    bad = [f"{rel}:{line} imports {'.'.join(t)}" for path, rel in _modules() if rel.parts[0] == "lab"
           for line, t, _lazy in _imports(path, rel) if _stage(t) not in (None, "lab")]
    assert not bad, "\n".join(bad)


def test_help_does_not_load_the_lab_or_pandas():
    code = ("import sys; from dissect.port902.cli.main import build_parser; build_parser(lab=False).format_help();"
            "print(sorted(m for m in sys.modules if m.startswith('dissect.port902.lab') or m in "
            "('pandas', 'matplotlib', 'scapy', 'pyshark')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_module_has_a_docstring_and_fits_in_one_sitting():
    missing, long = [], []
    for path, rel in _modules():
        text = path.read_text()
        if not ast.get_docstring(ast.parse(text)) and text.strip():
            missing.append(str(rel))
        if text.count("\n") > MAX_LINES:
            long.append(f"{rel} ({text.count(chr(10))} lines)")
    assert not missing, "no docstring: " + ", ".join(missing)
    assert not long, f"over {MAX_LINES} lines: " + ", ".join(long)


def test_version_is_single_sourced():
    assert importlib.metadata.version("dissect902") == pkg.__version__


@pytest.mark.parametrize("argv, module, extra", [
    (["analyze", "-f", "csv"], "pandas", "frames"),
    (["analyze", "-f", "parquet", "-o", "{tmp}/x.parquet"], "pyarrow", "parquet"),
])
def test_a_missing_extra_is_one_line_that_names_it(argv, module, extra, monkeypatch, capsys, tmp_path):
    sample = str(Path(__file__).parent.parent / "samples" / "esxi8-console.pcap")
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv] + ["-q", sample])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and f"dissect902[{extra}]" in err[0] and module in err[0], err


def test_analysis_without_pandas_still_runs(monkeypatch, capsys):
    """The analysis and its JSON need none of the extras."""
    sample = str(Path(__file__).parent.parent / "samples" / "esxi8-console.pcap")
    for module in ("pandas", "matplotlib", "pyarrow"):
        monkeypatch.setitem(sys.modules, module, None)
    assert main(["analyze", "-f", "json", "-q", sample]) == 0
    assert '"sessions"' in capsys.readouterr().out
