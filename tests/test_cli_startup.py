"""Start-up cost of the command line: `dissect902 --help` loads no analysis, no optional extra.

Not a timing test (figures are in the README): what is imported is what costs, so this checks
``sys.modules`` in a fresh interpreter.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from dissect.port902.cli import main as climain

HEAVY = ("pandas", "matplotlib", "scapy", "pyshark", "pyarrow", "cryptography", "tqdm")
PIPELINE = ("analysis", "infer", "proto", "net", "analyzers", "model", "decrypt", "lab", "output.frames",
            "output.render", "cli.doctor", "cli.runner")


def _loaded_after(argv: list[str]) -> list[str]:
    code = ("import sys\nfrom dissect.port902.cli.main import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            "print('\\n'.join(sorted(sys.modules)), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "usage: dissect902" in done.stdout or "dissect902 " in done.stdout
    return done.stderr.split()


@pytest.mark.parametrize("argv", [["--help"], [], ["--version"]])
def test_top_level_help_imports_nothing_heavy(argv):
    loaded = _loaded_after(argv)
    heavy = [m for m in loaded if m.split(".")[0] in HEAVY]
    ours = [m for m in loaded if any(m == f"dissect.port902.{p}" or m.startswith(f"dissect.port902.{p}.")
                                     for p in PIPELINE)]
    assert not heavy and not ours, heavy + ours


def test_analyze_help_still_loads_only_what_its_epilog_needs():
    loaded = _loaded_after(["analyze", "--help"])
    assert "dissect.port902.model.schema" in loaded  # the table names in the epilog
    assert not [m for m in loaded if m.split(".")[0] in ("pandas", "matplotlib", "scapy", "pyarrow")]
    assert "dissect.port902.analysis" not in loaded


def test_lazy_listing_says_what_each_command_says_of_itself():
    full = climain.build_parser(lab=True, command=climain.ALL)
    lazy = climain.build_parser(command=None)
    assert full.format_help() == lazy.format_help()
    sub = next(a for a in full._actions if a.__class__.__name__ == "_SubParsersAction")
    assert list(sub.choices) == list(climain.COMMANDS)
    for choice in sub._choices_actions:
        assert choice.help == climain.COMMANDS[choice.dest][1], choice.dest


def test_the_command_run_gets_its_full_parser():
    parser = climain.build_parser(command="doctor")
    args = parser.parse_args(["doctor", "-f", "json", "x.pcap"])
    assert args.format == "json" and args.captures == ["x.pcap"] and callable(args.func)
