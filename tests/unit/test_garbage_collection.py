"""The cyclic garbage collector paused around a bulk pass (`evidence_store.garbage_collection`)."""

from __future__ import annotations

import functools
import gc
import threading
from collections.abc import Callable

import pytest

from evidence_store.garbage_collection import collector_paused


def _restores_the_collector(test: Callable[[], None]) -> Callable[[], None]:
    """Each test leaves the process's collector as it found it."""

    @functools.wraps(test)
    def run() -> None:
        was = gc.isenabled()
        try:
            test()
        finally:
            (gc.enable if was else gc.disable)()

    return run


@_restores_the_collector
def test_the_collector_is_off_inside_and_on_again_after() -> None:
    gc.enable()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


@_restores_the_collector
def test_the_collector_is_on_again_after_the_pass_raises() -> None:
    gc.enable()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("the pass failed")
    assert gc.isenabled()


@_restores_the_collector
def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    with collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


@_restores_the_collector
def test_nested_pauses_turn_it_on_only_at_the_outermost_end() -> None:
    gc.enable()
    with collector_paused():
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


@_restores_the_collector
def test_overlapping_pauses_in_two_threads_turn_it_on_when_the_last_ends() -> None:
    # thread A pauses, B pauses, A ends (B still running: stays off), B ends (on again); the naive
    # "remember isenabled() and restore it" would leave it off for good after B
    gc.enable()
    a_in, b_in, a_out, b_may_end = (threading.Event() for _ in range(4))
    seen: dict[str, bool] = {}

    def a() -> None:
        with collector_paused():
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def b() -> None:
        a_in.wait(5)
        with collector_paused():
            b_in.set()
            a_out.wait(5)
            seen["after A ended, while B runs"] = gc.isenabled()
            b_may_end.wait(5)

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for thread in threads:
        thread.start()
    a_out.wait(5)
    b_may_end.set()
    for thread in threads:
        thread.join(5)
    assert seen == {"after A ended, while B runs": False}
    assert gc.isenabled()
