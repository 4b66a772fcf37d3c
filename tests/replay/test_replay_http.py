"""``wharf replay`` into an HTTP receiver that fails every third request, and killed mid-way
then resumed through its consumer group: every record arrives, in order per partition, and the
only repeats are the batch that was in flight."""

from __future__ import annotations

import signal
from collections import Counter
from typing import Any

from collector.storage import Store
from tests.harness import LiveServer
from tests.http.live import request
from tests.replay.helpers import HttpReceiver, load_topic, resume_args, spawn, stop_when, wharf

PER_HOST = 200
BATCH = 40


def group_offsets(url: str, group: str) -> dict[int, tuple[int | None, int]]:
    status, body = request(url, "GET", f"/v1/groups/{group}")
    assert status == 200, body
    return {r["partition"]: (r["committed"], r["end_offset"]) for r in body["offsets"]}


def by_partition(records: list[dict[str, Any]]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for r in records:
        out.setdefault(r["partition"], []).append(r["offset"])
    return out


def assert_in_flight_only(receiver: HttpReceiver, expected: dict[int, int]) -> None:
    """Every offset arrived; the repeats are a contiguous run per partition and all belong to
    one accepted batch (the one in flight when the replay was stopped)."""
    seen = Counter((r["partition"], r["offset"]) for r in receiver.records())
    for p, count in expected.items():
        missing = [o for o in range(count) if (p, o) not in seen]
        assert not missing, f"partition {p}: missing {missing[:10]}"
    repeats = {k for k, n in seen.items() if n > 1}
    assert all(n <= 2 for n in seen.values())
    for p in expected:
        offs = sorted(o for q, o in repeats if q == p)
        assert offs == list(range(offs[0], offs[0] + len(offs))) if offs else True, offs
        assert len(offs) <= BATCH
    if repeats:
        batches = [
            {(r["partition"], r["offset"]) for r in req.records} for req in receiver.accepted
        ]
        assert any(repeats <= b for b in batches), sorted(repeats)


def test_every_record_delivered_through_failures(
    store: Store, server: LiveServer, receiver: HttpReceiver
) -> None:
    parts = load_topic(store, "orders", PER_HOST)
    receiver.fail_every = 3
    done = wharf(
        server.url,
        "replay", "-t", "orders", "--group", "etl", "--sink", receiver.url,
        "--batch", str(BATCH),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    # Each partition in offset order, each record once (the 503s were retried, not lost).
    got = by_partition(receiver.records())
    assert got == {p: list(range(len(recs))) for p, recs in parts.items()}
    # The content survives the trip.
    first = next(r for r in receiver.records() if r["partition"] == 1 and r["offset"] == 7)
    assert first["line"] == "web-1 request 7 status=201"
    assert first["fields"] == {"i": 7, "status": 201} and first["host"] == "web-1"
    # Across partitions: merged by timestamp.
    stamps = [r["ts"] for r in receiver.records()]
    assert stamps == sorted(stamps)
    # The group sits at the end of every partition.
    assert group_offsets(server.url, "etl") == dict.fromkeys(parts, (PER_HOST, PER_HOST))
    # A refused batch is retried with the same idempotency key, and keys are per batch.
    reqs = receiver.requests
    assert sum(r.status == 503 for r in reqs) >= 4
    for i, r in enumerate(reqs):
        if r.status == 503:
            assert reqs[i + 1].key == r.key
    accepted_keys = [r.key for r in receiver.accepted]
    assert len(set(accepted_keys)) == len(accepted_keys)
    one = receiver.accepted[0]
    ranges = sorted((p, min(o), max(o)) for p, o in by_partition(one.records).items())
    assert one.key == "_".join(f"orders-{p}-{a}-{b}" for p, a, b in ranges)
    assert one.headers["Content-Type"] == "application/x-ndjson"
    # Nothing left: a second run delivers nothing and succeeds.
    before = len(receiver.requests)
    again = wharf(server.url, "replay", "-t", "orders", "--group", "etl", "--sink", receiver.url)
    assert again.returncode == 0, again.stderr
    assert len(receiver.requests) == before


def test_sigkill_then_resume_repeats_only_the_batch_in_flight(
    store: Store, server: LiveServer, receiver: HttpReceiver
) -> None:
    parts = load_topic(store, "orders", PER_HOST)
    receiver.fail_every = 3
    receiver.delay_s = 0.15  # a slow consumer: the kill lands while a batch is in flight
    args = ["replay", "-t", "orders", "-g", "etl", "--sink", receiver.url, "--batch", str(BATCH)]
    proc = spawn(server.url, *args)
    stop_when(
        proc, lambda: len(receiver.accepted) >= 4, what="four accepted batches", sig=signal.SIGKILL
    )
    committed = group_offsets(server.url, "etl")
    assert any(c is not None and c < PER_HOST for c, _ in committed.values())
    receiver.delay_s = 0.0
    done = wharf(server.url, *args)
    assert done.returncode == 0, done.stderr
    assert_in_flight_only(receiver, {p: len(r) for p, r in parts.items()})
    assert group_offsets(server.url, "etl") == dict.fromkeys(parts, (PER_HOST, PER_HOST))
    # Within each run every partition went in offset order: going through everything the
    # receiver took, a partition steps back at most once (where the resumed run began).
    last: dict[int, int] = {}
    steps_back = Counter[int]()
    for req in receiver.accepted:
        for r in req.records:
            p, o = r["partition"], r["offset"]
            if o <= last.get(p, -1):
                steps_back[p] += 1
                assert last[p] - o < BATCH, (p, o, last[p])  # back by less than a batch
            last[p] = o
    assert all(n <= 1 for n in steps_back.values()), steps_back


def test_sigint_commits_prints_resume_and_exits_130(
    store: Store, server: LiveServer, receiver: HttpReceiver
) -> None:
    parts = load_topic(store, "orders", PER_HOST)
    receiver.delay_s = 0.1
    proc = spawn(
        server.url,
        "replay", "-t", "orders", "--group", "etl", "--sink", receiver.url,
        "--batch", str(BATCH),
    )  # fmt: skip
    err = stop_when(proc, lambda: len(receiver.accepted) >= 3, what="three accepted batches")
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    args = resume_args(err)
    assert args[:5] == ["replay", "-t", "orders", "--group", "etl"]
    # What the receiver took before the signal is committed (at most the batch in flight
    # is not).
    committed = group_offsets(server.url, "etl")
    taken = by_partition(receiver.records())
    for p, (c, _) in committed.items():
        assert c is not None and c <= len(taken.get(p, []))
        assert len(taken.get(p, [])) - c <= BATCH
    receiver.delay_s = 0.0
    done = wharf(server.url, *args)
    assert done.returncode == 0, done.stderr
    assert_in_flight_only(receiver, {p: len(r) for p, r in parts.items()})


def test_sigint_without_group_resumes_from_offsets(
    store: Store, server: LiveServer, receiver: HttpReceiver
) -> None:
    parts = load_topic(store, "orders", PER_HOST)
    receiver.delay_s = 0.1
    proc = spawn(
        server.url, "replay", "-t", "orders", "--sink", receiver.url, "--batch", str(BATCH)
    )
    err = stop_when(proc, lambda: len(receiver.accepted) >= 3, what="three accepted batches")
    assert proc.returncode == 130, err
    args = resume_args(err)
    assert "--from-offset" in args and "--to-offset" in args
    # New records after the interruption are not part of the resumed range.
    load_more = wharf(server.url, *args)
    assert load_more.returncode == 0, load_more.stderr
    assert_in_flight_only(receiver, {p: len(r) for p, r in parts.items()})


def test_http_refusal_is_fatal_with_a_clear_line(
    store: Store, server: LiveServer, receiver: HttpReceiver
) -> None:
    load_topic(store, "orders", 20)
    receiver.script = [400]
    done = wharf(server.url, "replay", "-t", "orders", "-g", "etl", "--sink", receiver.url)
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert lines[0].startswith("wharf: the sink http://127.0.0.1:")
    assert "refused a batch: HTTP 400" in lines[0] and "try later" in lines[0]
    assert lines[1].startswith("wharf: resume with: wharf replay -t orders --group etl")
    assert "Traceback" not in done.stderr
    # Nothing was accepted, so nothing was committed.
    status, body = request(server.url, "GET", "/v1/groups/etl")
    assert status == 404, body


def test_429_retry_after_is_honoured(
    store: Store, server: LiveServer, receiver: HttpReceiver
) -> None:
    load_topic(store, "orders", 5)
    receiver.script = [429]
    receiver.retry_after = "1"
    done = wharf(server.url, "replay", "-t", "orders", "--sink", receiver.url)
    assert done.returncode == 0, done.stderr
    first, second = receiver.requests[:2]
    assert first.status == 429 and second.status == 200
    assert second.key == first.key
    assert second.at - first.at >= 0.9  # waited as told, not the 0.1 s backoff
    assert "HTTP 429" in done.stderr


def test_sink_that_never_answers_gives_up_after_retry_for(
    store: Store, server: LiveServer, receiver: HttpReceiver
) -> None:
    load_topic(store, "orders", 5)
    receiver.fail_every = 1
    done = wharf(server.url, "replay", "-t", "orders", "--sink", receiver.url, "--retry-for", "1s")
    assert done.returncode == 2
    assert "did not take a batch" in done.stderr and "HTTP 503" in done.stderr
    assert "resume with" in done.stderr and "Traceback" not in done.stderr
