"""Capture archives (issue 11): many rotated files per sensor analysed as one stream each.

Stage: between ``analysis`` and ``cli``.  ``discover`` groups input files into sensors
(``--sensor-by dir``: the directory a file is in; ``none``: all one sensor) and orders each
sensor's files by first timestamp (``io.chain``); ``analyze_archive`` runs the ordinary
pipeline on those chains, so a connection that continues into the next file is one session
with ``sources``, and notes connections seen by more than one sensor.
"""

from .stitch import ArchiveResult, analyze_archive, discover, note_cross_sensor

__all__ = ["ArchiveResult", "analyze_archive", "discover", "note_cross_sensor"]
