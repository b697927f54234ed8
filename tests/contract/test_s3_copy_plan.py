"""The part-copy plan of the S3 store's upload assembly (sizes too large for moto)."""

from __future__ import annotations

import itertools

from storage.blobs.s3_assemble import MAX_COPY_PART, MAX_PARTS, MIN_PART, CopyRange, plan_copy

MiB = 1024 * 1024


def test_one_range_per_part_when_all_fit() -> None:
    assert plan_copy([6 * MiB, 6 * MiB, 1]) == [
        CopyRange(0, 0, 6 * MiB - 1),
        CopyRange(1, 0, 6 * MiB - 1),
        CopyRange(2, 0, 0),
    ]


def test_small_non_last_part_refuses_copy() -> None:
    assert plan_copy([MIN_PART - 1, 6 * MiB]) is None
    assert plan_copy([MIN_PART, MIN_PART - 1]) is not None


def test_parts_over_the_copy_limit_are_split_into_covering_ranges() -> None:
    size = 2 * MAX_COPY_PART + 3
    plan = plan_copy([size, 7])
    assert plan is not None
    first = [piece for piece in plan if piece.index == 0]
    assert len(first) == 3
    assert first[0].first == 0
    assert first[-1].last == size - 1
    for before, after in itertools.pairwise(first):
        assert after.first == before.last + 1
    assert all(MIN_PART <= p.last - p.first + 1 <= MAX_COPY_PART for p in first)
    assert plan[-1] == CopyRange(1, 0, 6)


def test_too_many_parts_refuses_copy() -> None:
    assert plan_copy([MIN_PART] * MAX_PARTS) is not None
    assert plan_copy([MIN_PART] * (MAX_PARTS + 1)) is None
