"""Request ids the server makes: UUIDv7 (RFC 9562), so the prediction log's id index grows
at its end instead of taking each id on a random page (see ``new_request_id``)."""

from __future__ import annotations

import time
import uuid

from mlcanary.serve.service import new_request_id


def test_ids_are_uuid7_with_the_time_of_their_making() -> None:
    before = time.time_ns() // 1_000_000
    made = new_request_id()
    after = time.time_ns() // 1_000_000
    parsed = uuid.UUID(made)
    assert len(made) == 32 and made == parsed.hex
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert before <= parsed.int >> 80 <= after


def test_ids_are_unique_and_later_milliseconds_sort_after() -> None:
    ids = [new_request_id() for _ in range(100_000)]
    assert len(set(ids)) == len(ids)
    random_parts = {uuid.UUID(i).int & ((1 << 62) - 1) for i in ids[:1000]}
    assert len(random_parts) == 1000, "the random bits do not vary"
    first = new_request_id()
    deadline = time.monotonic() + 5
    while uuid.UUID(later := new_request_id()).int >> 80 == uuid.UUID(first).int >> 80:
        assert time.monotonic() < deadline, "the clock did not move in 5 s"
    assert later > first
