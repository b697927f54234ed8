"""Freezing the start-up heap keeps it out of later collections and loses no garbage."""

from __future__ import annotations

import gc
import weakref

from cli.heap import freeze_startup_heap


class _Node:
    """An object that can be part of a reference cycle and be watched by a weak reference."""

    def __init__(self) -> None:
        self.other: _Node | None = None


def _cycle() -> weakref.ref[_Node]:
    first, second = _Node(), _Node()
    first.other, second.other = second, first
    return weakref.ref(first)


def test_start_up_objects_are_frozen_and_later_cycles_are_still_collected() -> None:
    before = gc.get_freeze_count()
    start_up_garbage = _cycle()
    kept = [_Node() for _ in range(100)]
    try:
        freeze_startup_heap()
        assert start_up_garbage() is None, "the garbage of the start-up was collected first"
        assert gc.get_freeze_count() >= before + len(kept), "what is kept was frozen"
        later_garbage = _cycle()
        gc.collect()
        assert later_garbage() is None, "a cycle made after the freeze is still collected"
    finally:
        gc.unfreeze()  # NOTE: the other tests of this process run with the usual collector
