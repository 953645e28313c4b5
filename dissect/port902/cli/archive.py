"""``dissect902 analyze`` on capture archives (issue 11): the options and the two runs.

Kept apart from ``cli/main.py`` so the one-file command stays as it was: a directory,
``--sensor-by``, ``--jobs`` or ``--scheduler`` select this path.  Each sensor's files are one
stream (``archive``); ``-f parquet -o OUT/`` grows a Parquet dataset (``archive.dataset``).
"""

from __future__ import annotations

import argparse
import os
import sys

from ..extras import require
from ..output.render import safe
from ..output.sink import output_dir


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("capture archives (a DIRECTORY of rotated captures, or --sensor-by)")
    g.add_argument("--sensor-by", choices=["dir", "none", "file"], default=None,
                   help="which files are one sensor's stream, stitched in first-timestamp order (dir: the "
                        "directory a file is in, the default when a DIRECTORY is given; none: all files one "
                        "sensor; file: each file alone, the default for a list of files)")
    g.add_argument("--jobs", type=_positive, default=None, metavar="N",
                   help="split the connections over N local processes (the result is the serial one); default for "
                        "captures (not archives) of 128 MB or more: the usable cores (at most 4), else 1")
    g.add_argument("--scheduler", metavar="tcp://HOST:8786",
                   help="run the shares on a Dask cluster (pip install 'dissect902[scale]')")


def wanted(args: argparse.Namespace) -> bool:
    """The archive path: a directory, --sensor-by, --scheduler, or --jobs over several files
    (each file its own sensor); ``--jobs`` on one capture file is the plain analysis in shares."""
    return (args.sensor_by is not None or bool(args.scheduler) or any(os.path.isdir(c) for c in args.captures)
            or bool(args.jobs and args.jobs > 1 and len(args.captures) > 1))


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of processes, 1 or more (not {text!r})")
    return n


def sensor_by(args: argparse.Namespace) -> str:
    """--sensor-by, else ``dir`` when a directory was given and ``file`` for a list of files."""
    if args.sensor_by:
        return args.sensor_by
    return "dir" if any(os.path.isdir(c) for c in args.captures) else "file"


def _client(args: argparse.Namespace):
    if not args.scheduler:
        return None
    distributed = require("distributed", "--scheduler")
    return distributed.Client(args.scheduler)


def dataset(args: argparse.Namespace, prog: str) -> int:
    """``-f parquet -o OUT/``: the archive into (or onto) a Parquet dataset; only files the
    manifest does not know are read."""
    from ..archive.dataset import write_dataset

    output_dir(args.output)
    client = _client(args)
    try:
        manifest = write_dataset(args.captures, args.output, sensor_by=sensor_by(args),
                                 jobs=args.jobs, client=client, show_secrets=args.show_secrets,
                                 keylog=args.keylog, observers=[] if args.no_diagnostics else None)
    finally:
        if client is not None:
            client.close()
    if not args.quiet:
        for name, plan in manifest["plan"].items():
            print(f"{prog}: {safe(name)}: {plan['why']}: read {len(plan['read'])} file(s)", file=sys.stderr)
    for _path, why in manifest["unreadable"]:
        print(f"{prog}: error: {safe(why)}", file=sys.stderr)
    return 2 if manifest["unreadable"] else 0


def run(args: argparse.Namespace, prog: str, observers, **options):
    """(result, exit code) of an archive run: one stream per sensor, serial or in shares."""
    from ..archive import discover, note_cross_sensor
    from .runner import progress_bar, run_analyze

    chains = discover(args.captures, sensor_by(args))
    if not (args.jobs and args.jobs > 1) and not args.scheduler:
        result, code = run_analyze(chains, args.quiet, prog=prog, observers=observers, **options)
    else:
        from ..archive.parallel import run_chains

        bar, update = progress_bar(chains, args.quiet)
        client = _client(args)
        try:
            jobs = args.jobs or (len(client.scheduler_info().get("workers", {})) + 1)
            result = run_chains(chains, jobs=max(2, jobs), client=client, observers=observers, progress=update,
                                **options)
        finally:
            if bar is not None:
                bar.close()
            if client is not None:
                client.close()
        for _path, why in result.unreadable:
            print(f"{prog}: error: {safe(why)}", file=sys.stderr)
        files = sum(len(c.paths) for c in chains)
        code = 2 if result.unreadable else 0
        if result.unreadable and len(result.unreadable) == files:
            return None, 2
    if result is not None:
        note_cross_sensor(result)
    return result, code
