"""The pure parts of bench/method.py, the method every benchmark shares (issue 21): the order of the
variants in each round, median and spread, and targets judged by the median."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "bench" / "method.py"
_SPEC = importlib.util.spec_from_file_location("bench_method", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
method = importlib.util.module_from_spec(_SPEC)
sys.modules["bench_method"] = method
_SPEC.loader.exec_module(method)


def test_every_variant_takes_every_place_over_as_many_rounds_as_variants() -> None:
    names = ["a", "b", "c", "d"]
    orders = [method.round_order(names, r) for r in range(len(names))]
    assert orders[0] == names
    assert orders[1] == ["b", "c", "d", "a"]
    for place in range(len(names)):
        assert sorted(order[place] for order in orders) == names
    for order in orders:
        assert sorted(order) == names
    assert method.round_order(names, len(names)) == names
    assert method.round_order([], 3) == []


def test_median_and_spread_not_the_best() -> None:
    s = method.spread([3.0, 1.0, 2.0, 10.0, 2.5])
    assert (s.median, s.low, s.high, s.best, s.rounds) == (2.5, 1.0, 10.0, 1.0, 5)
    assert method.spread([4.0, 1.0, 2.0, 3.0]).median == 2.5
    assert s.cells(digits=1) == ["2.5", "1.0-10.0", "1.0"]
    with pytest.raises(ValueError):
        method.spread([])


def test_targets_are_judged_by_what_they_are_given_and_check_needs_every_one_judged_and_met() -> None:
    ratio = method.Target("put vs hashlib", measured=0.84, goal=0.85)
    time_ = method.Target("p95", measured=100.0, goal=100.0, higher_is_better=False, unit=" ms")
    memory = method.Target("peak", measured=100.0, goal=100.0, higher_is_better=False, strict=True)
    assert (ratio.met, ratio.verdict) == (False, "NOT met")
    assert (time_.met, time_.verdict) == (True, "met")
    assert not memory.met
    assert method.targets_ok([time_])
    assert not method.targets_ok([time_, ratio])
    unjudged = method.Target("few rounds", measured=2.0, goal=1.0, judged=False)
    assert unjudged.verdict == "not judged"
    assert not method.targets_ok([unjudged])


def test_a_run_is_judged_only_from_five_rounds() -> None:
    parser = method.argparse.ArgumentParser()
    method.add_method_options(parser, caches=(method.COLD, method.WARM))
    args = parser.parse_args([])
    assert args.rounds == method.MIN_ROUNDS == 5
    assert method.judged(args)
    assert method.caches_of(args) == ["cold", "warm"]
    few = parser.parse_args(["--repeat", "3", "--cache", "cold"])
    assert not method.judged(few)
    assert method.caches_of(few) == ["cold"]
