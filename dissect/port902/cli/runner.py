"""What every command does around ``analyze``: a progress bar on a terminal for big inputs
(drawn on stderr, so shown only when stderr is a terminal) and one line on stderr, exit code 2,
for a file that is not a capture (the readable ones are analysed all the same)."""

from __future__ import annotations

import gc
import os
import sys
from typing import Sequence

from ..analysis import Analysis, analyze
from ..decrypt.keylog import KeyLogError
from ..errors import CaptureError
from ..output.render import safe

PROGRESS_MIN_BYTES = 4 << 20
JOBS_MIN_BYTES = 128_000_000  # see auto_jobs; measured in README "Speed and memory"
MAX_AUTO_JOBS = 4  # every share scans the whole file in its own interpreter (~100 MiB each)


def progress_bar(paths: Sequence[str], quiet: bool):
    """(bar, update callback) — a tqdm bar on a terminal for big inputs; (None, None) otherwise."""
    if quiet or sys.stderr is None or not sys.stderr.isatty():
        return None, None
    streams = [p for p in paths if not hasattr(p, "size_bytes")
               and (p == "-" or (os.path.exists(p) and not os.path.isfile(p)))]
    total = None  # a pipe or FIFO has no size: the bar then counts bytes read and their rate
    if not streams:
        try:  # an archive chain counts all its files
            total = sum(p.size_bytes if hasattr(p, "size_bytes") else os.path.getsize(p) for p in paths)
        except OSError:
            return None, None
        if total < PROGRESS_MIN_BYTES:
            return None, None
    from tqdm import tqdm

    bar = tqdm(total=total, unit="B", unit_scale=True, desc="reading", file=sys.stderr, leave=False)
    ends = _file_ends(paths) if total is not None else []  # an archive: "files k/n" beside the bytes
    shown = [0]
    if ends:
        bar.set_postfix_str(f"files 0/{len(ends)}", refresh=False)

    def update(done: int) -> None:
        bar.update(max(0, done - bar.n))
        if ends:
            k = sum(1 for e in ends if e <= done)
            if k != shown[0]:
                shown[0] = k
                bar.set_postfix_str(f"files {k}/{len(ends)}", refresh=False)

    return bar, update


def _file_ends(paths) -> list[int]:
    """Cumulative byte offsets at which each file of the inputs ends, when several files are read
    (archive chains, or a list of captures); empty for one plain file."""
    sizes = []
    for p in paths:
        for f in getattr(p, "paths", None) or [p]:
            try:
                sizes.append(os.path.getsize(f))
            except (OSError, TypeError):
                sizes.append(0)
    if len(sizes) < 2:
        return []
    ends, total = [], 0
    for n in sizes:
        total += n
        ends.append(total)
    return ends


def auto_jobs(paths: Sequence) -> int:
    """How many processes analyse ``paths`` when ``--jobs`` is not given: the usable cores (at
    most ``MAX_AUTO_JOBS``) for regular capture files of ``JOBS_MIN_BYTES`` or more in all, else 1
    (a second process scans the whole file again and costs a fork and the records' way back: a
    loss on small files; and share 0 carries the side analyses alone, so the gain flattens with
    more processes while memory grows with each)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    if cores < 2 or not paths or not all(isinstance(p, (str, os.PathLike)) and os.path.isfile(p) for p in paths):
        return 1
    if len({os.path.realpath(p) for p in paths}) != len(paths):
        return 1
    try:
        total = sum(os.path.getsize(p) for p in paths)
    except OSError:
        return 1
    return min(cores, MAX_AUTO_JOBS) if total >= JOBS_MIN_BYTES else 1


def run_analyze(paths: Sequence[str], quiet: bool, prog: str = "dissect902", jobs: int | None = 1, **options
                ) -> tuple[Analysis | None, int]:
    """(result, 0); (result, 2) when some inputs were not readable captures (one line on stderr
    each; they are ``unreadable_capture`` weird rows and the others are analysed); (None, 2)
    when none was.  ``jobs``: processes (archive/parallel.py ``analyze_shared``, the same
    result); None: :func:`auto_jobs`."""
    # an archive chain (already discovered: ``cli.archive``) names its directory too: not again
    if any(isinstance(p, (str, os.PathLike)) and not hasattr(p, "open_reader") and os.path.isdir(p)
           for p in paths):
        from ..archive import discover  # a directory: its rotated captures, one stream per sensor

        chains = [p for p in paths if hasattr(p, "open_reader")]
        paths = chains + list(discover([p for p in paths if not hasattr(p, "open_reader")], "dir"))
    bar, update = progress_bar(paths, quiet)
    # The command line owns its interpreter (the library does not touch the collector): objects
    # that live through the whole run need not be traced again and again while packets stream
    # through, so freeze what exists and collect less often, then restore.
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(thresholds[0], 50_000), *thresholds[1:])
    if jobs is None:
        jobs = auto_jobs(paths)
    try:
        if jobs > 1 and all(isinstance(p, (str, os.PathLike)) and os.path.isfile(p) for p in paths):
            from ..archive.parallel import analyze_shared

            result = analyze_shared(paths, jobs=jobs, progress=update, skip_unreadable=True, **options)
        else:
            result = analyze(paths, progress=update, skip_unreadable=True, **options)
    except (CaptureError, KeyLogError) as exc:  # a key log that cannot be read; callers' own observers
        print(f"{prog}: error: {safe(exc)}", file=sys.stderr)
        return None, 2
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
        if bar is not None:
            bar.close()
    for _path, why in result.unreadable:
        print(f"{prog}: error: {safe(why)}", file=sys.stderr)
    files = sum(len(p.paths) if hasattr(p, "paths") else 1 for p in paths)  # an archive chain is many files
    if result.unreadable and len(result.unreadable) == files:
        return None, 2
    return result, (2 if result.unreadable else 0)
