"""Fuzzing harness for dissect902 (issue 13): targets, seed corpus and mutators shared by
``tests/test_fuzz.py`` (a short bounded run in the suite) and ``scripts/fuzz.py`` (long runs)."""
