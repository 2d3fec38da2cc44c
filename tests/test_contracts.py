"""Tests of the shared contracts: the raw id layout (UUIDv7) and its uniqueness."""

from __future__ import annotations

import os
import uuid

from lakehook.contracts import new_raw_id


def test_raw_id_is_a_uuid7_carrying_its_millisecond() -> None:
    ms = 1_764_158_400_123
    parsed = uuid.UUID(new_raw_id(ms))
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert parsed.int >> 80 == ms


def test_raw_ids_sort_by_time() -> None:
    earlier = [new_raw_id(1_700_000_000_000 + i) for i in range(50)]
    assert sorted(earlier) == earlier


def test_raw_ids_are_unique_within_one_millisecond() -> None:
    ids = [new_raw_id(1_700_000_000_000) for _ in range(20_000)]
    assert len(set(ids)) == len(ids)


def test_a_forked_process_draws_other_raw_ids() -> None:
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.close(read_end)
        os.write(write_end, ",".join(new_raw_id(1) for _ in range(100)).encode())
        os._exit(0)
    os.close(write_end)
    parent_ids = {new_raw_id(1) for _ in range(100)}
    with os.fdopen(read_end, "rb") as pipe:
        child_ids = set(pipe.read().decode().split(","))
    os.waitpid(child, 0)
    assert len(child_ids) == 100
    assert not parent_ids & child_ids
