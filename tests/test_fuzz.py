"""A short fuzz run in the suite (issue 13): every target of ``fuzz.targets`` on hypothesis'
bytes and on mutated seeds from ``samples/``; no exception, and memory that does not grow
with the number of inputs.  ``scripts/fuzz.py`` runs the long campaign."""

import random
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz import corpus, targets

FAST = ["tls", "authd", "nfc", "dns", "heartbeat"]
SLOW = ["capture_python", "capture_c", "pipeline", "analyze"]
BUDGET = {"tls": 300, "authd": 300, "nfc": 300, "dns": 1500, "heartbeat": 1500,
          "capture_python": 400, "capture_c": 400, "pipeline": 150, "analyze": 60}


@pytest.mark.parametrize("name", FAST)
def test_parser_on_arbitrary_bytes(name):
    target = targets.TARGETS[name]

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.binary(max_size=2000))
    def run(data):
        target(data)

    run()


@pytest.mark.parametrize("name", FAST + SLOW)
def test_mutated_seeds(name):
    target = targets.TARGETS[name]
    seeds = corpus.seeds(name)
    assert seeds, "no seed corpus"
    rng = random.Random(f"{name}-13")
    for _ in range(BUDGET[name]):
        target(corpus.mutate(rng.choice(seeds), rng, seeds))


def test_pipeline_memory_does_not_grow_with_inputs():
    """Run the pipeline target twice as long: what stays allocated afterwards must not double."""
    seeds = corpus.seeds("pipeline")
    rng = random.Random(7)
    inputs = [corpus.mutate(rng.choice(seeds), rng, seeds) for _ in range(40)]
    targets.pipeline(inputs[0])  # warm caches and imports
    tracemalloc.start()
    try:
        for data in inputs[:20]:
            targets.pipeline(data)
        first, _ = tracemalloc.get_traced_memory()
        for data in inputs[20:]:
            targets.pipeline(data)
        second, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert second < first * 1.5 + 2_000_000, (first, second)
    assert peak < 200 * 2**20
