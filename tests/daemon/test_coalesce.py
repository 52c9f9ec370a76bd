"""Apply messages fetched together are applied together, and a small pool of appliers
serves every partition a process consumes (sync/daemon/worker.py)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from sync.daemon.worker import _merged


def msg(entity: str, keys: list[str], batch: str, commits: dict[str, float]) -> SimpleNamespace:
    return SimpleNamespace(args=(entity, keys, {"log": {"batch_id": batch},
                                                "trace": {"traceparent": batch},
                                                "commits": commits}))


def test_messages_merge_per_entity_keeping_every_key_once_and_every_commit_time() -> None:
    out = _merged([
        msg("items", ["k1", "k2"], "b1", {"k1": 1.0, "k2": 1.5}),
        msg("users", ["u1"], "b2", {"u1": 2.0}),
        msg("items", ["k2", "k3"], "b3", {"k2": 3.0, "k3": 3.0}),
    ])
    assert [(e, keys) for e, keys, _ in out] == [("items", ["k1", "k2", "k3"]),
                                                ("users", ["u1"])]
    items = out[0][2]
    # the first message's log and trace context; the latest commit time of each key
    assert items["log"] == {"batch_id": "b1"} and items["trace"] == {"traceparent": "b1"}
    assert items["commits"] == {"k1": 1.0, "k2": 3.0, "k3": 3.0}


def test_a_message_alone_is_applied_as_it_came() -> None:
    (only,) = _merged([msg("items", ["k1"], "b1", {"k1": 1.0})])
    assert only == ("items", ["k1"], {"log": {"batch_id": "b1"}, "trace": {"traceparent": "b1"},
                                      "commits": {"k1": 1.0}})


def test_merging_does_not_change_the_messages() -> None:
    first = msg("items", ["k1"], "b1", {"k1": 1.0})
    _merged([first, msg("items", ["k2"], "b2", {"k2": 2.0})])
    assert first.args[2]["commits"] == {"k1": 1.0}


def _apply_queued(monkeypatch: Any, batch_size: int, messages: list[list[str]]
                  ) -> list[list[str]]:
    """The keys of each apply when ``messages`` queue up while a first one is applied."""
    import dramatiq
    from dramatiq.brokers.stub import StubBroker

    from sync.daemon import worker
    from sync.daemon.partitions import actor_name, queue_name

    broker = StubBroker()
    broker.declare_queue(queue_name("p", 0))
    stop, first_running, release = threading.Event(), threading.Event(), threading.Event()
    calls: list[tuple[str, list[str], dict[str, Any]]] = []

    def handle(rt: Any, entity: str, keys: list[str], meta: dict[str, Any]) -> None:
        calls.append((entity, keys, meta))
        first_running.set()
        assert release.wait(10)

    monkeypatch.setattr(worker, "handle", handle)
    rt = SimpleNamespace(broker=broker, pipeline="p", partitions=1, stop=stop,
                         cfg=SimpleNamespace(batch=SimpleNamespace(size=batch_size),
                                             daemon=SimpleNamespace(worker_timeout_ms=20,
                                                                    lease_ttl_s=3,
                                                                    apply_threads=1)))

    def send(keys: list[str]) -> None:
        broker.enqueue(dramatiq.Message(queue_name=queue_name("p", 0),
                                        actor_name=actor_name("p", 0),
                                        args=("items", keys, {"commits": {k: 1.0 for k in keys}}),
                                        kwargs={}, options={}))

    consumers = worker.PartitionConsumers(rt, shared=False)  # type: ignore[arg-type]
    send(["first"])
    consumers.start()
    assert first_running.wait(10)
    for keys in messages:  # queued while the first apply runs
        send(keys)
    time.sleep(0.3)  # the consumer fetches them meanwhile
    release.set()
    deadline = time.monotonic() + 10
    while sum(len(k) for _, k, _ in calls) < 1 + sum(map(len, messages)) \
            and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    consumers.stop()
    return [keys for _, keys, _ in calls]


def test_messages_queued_while_an_apply_runs_are_applied_in_one_go(monkeypatch: Any) -> None:
    queued = [[f"k{i}"] for i in range(1, 11)]
    assert _apply_queued(monkeypatch, 10_000, queued) == [
        ["first"], [f"k{i}" for i in range(1, 11)]]


def test_messages_are_taken_together_up_to_about_a_batch_of_keys(monkeypatch: Any) -> None:
    queued = [[f"a{i}", f"b{i}"] for i in range(5)]
    assert _apply_queued(monkeypatch, 3, queued) == [
        ["first"], ["a0", "b0", "a1", "b1"], ["a2", "b2", "a3", "b3"], ["a4", "b4"]]


def test_a_malformed_message_is_dropped_and_the_ones_with_it_are_applied(
        monkeypatch: Any) -> None:
    import dramatiq
    from dramatiq.brokers.stub import StubBroker

    from sync.daemon import worker
    from sync.daemon.partitions import actor_name, queue_name

    broker = StubBroker()
    broker.declare_queue(queue_name("p", 0))
    done = threading.Event()
    seen: list[list[str]] = []

    def handle(rt: Any, entity: str, keys: list[str], meta: dict[str, Any]) -> None:
        seen.append(keys)
        done.set()

    monkeypatch.setattr(worker, "handle", handle)
    rt = SimpleNamespace(broker=broker, pipeline="p", partitions=1, stop=threading.Event(),
                         cfg=SimpleNamespace(batch=SimpleNamespace(size=100),
                                             daemon=SimpleNamespace(worker_timeout_ms=20,
                                                                    lease_ttl_s=3,
                                                                    apply_threads=1)))
    for args in [("items",), ("items", ["k1"], {})]:  # a malformed message first
        broker.enqueue(dramatiq.Message(queue_name=queue_name("p", 0),
                                        actor_name=actor_name("p", 0), args=args,
                                        kwargs={}, options={}))
    consumers = worker.PartitionConsumers(rt, shared=False)  # type: ignore[arg-type]
    consumers.start()
    try:
        assert done.wait(10)
    finally:
        rt.stop.set()
        consumers.stop()
    assert seen == [["k1"]]


def _runtime(broker: Any, partitions: int, apply_threads: int, batch_size: int = 100
             ) -> SimpleNamespace:
    return SimpleNamespace(broker=broker, pipeline="p", partitions=partitions,
                           stop=threading.Event(),
                           cfg=SimpleNamespace(batch=SimpleNamespace(size=batch_size),
                                               daemon=SimpleNamespace(
                                                   worker_timeout_ms=20, lease_ttl_s=3,
                                                   apply_threads=apply_threads)))


def _send(broker: Any, partition: int, keys: list[str]) -> None:
    import dramatiq

    from sync.daemon.partitions import actor_name, queue_name

    broker.enqueue(dramatiq.Message(queue_name=queue_name("p", partition),
                                    actor_name=actor_name("p", partition),
                                    args=("items", keys, {"commits": {k: 1.0 for k in keys}}),
                                    kwargs={}, options={}))


def _wait(pred: Any, what: str) -> None:
    deadline = time.monotonic() + 10
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_each_partition_is_applied_by_one_thread_of_the_pool(monkeypatch: Any) -> None:
    from dramatiq.brokers.stub import StubBroker

    from sync.daemon import worker
    from sync.daemon.partitions import queue_name

    broker = StubBroker()
    for p in range(4):
        broker.declare_queue(queue_name("p", p))
    seen: list[tuple[str, str]] = []  # (key, applying thread)

    def handle(rt: Any, entity: str, keys: list[str], meta: dict[str, Any]) -> None:
        seen.extend((k, threading.current_thread().name) for k in keys)

    monkeypatch.setattr(worker, "handle", handle)
    rt = _runtime(broker, partitions=4, apply_threads=2)
    consumers = worker.PartitionConsumers(rt, shared=False)  # type: ignore[arg-type]
    consumers.start()
    try:
        for round_ in range(3):
            for p in range(4):
                _send(broker, p, [f"p{p}-{round_}"])
        _wait(lambda: len(seen) == 12, "every message applied")
        for p in range(4):  # every message acked: the queues are done
            broker.join(queue_name("p", p), timeout=5000)
    finally:
        rt.stop.set()
        consumers.stop()
    threads: dict[str, set[str]] = {}
    for k, name in seen:
        threads.setdefault(k.split("-")[0], set()).add(name)
    assert all(len(names) == 1 for names in threads.values()), threads  # one each
    per_applier: dict[str, int] = {}
    for (name,) in threads.values():
        per_applier[name] = per_applier.get(name, 0) + 1
    assert per_applier == {"apply-0": 2, "apply-1": 2}  # two appliers, two partitions each
    for p in range(4):  # each partition's messages in the order they were sent
        assert [k for k, _ in seen if k.startswith(f"p{p}-")] == [f"p{p}-{r}" for r in range(3)]


def test_messages_of_several_partitions_queued_meanwhile_are_applied_together(
        monkeypatch: Any) -> None:
    from dramatiq.brokers.stub import StubBroker

    from sync.daemon import worker
    from sync.daemon.partitions import queue_name

    broker = StubBroker()
    for p in range(3):
        broker.declare_queue(queue_name("p", p))
    first_running, release = threading.Event(), threading.Event()
    calls: list[list[str]] = []

    def handle(rt: Any, entity: str, keys: list[str], meta: dict[str, Any]) -> None:
        calls.append(keys)
        first_running.set()
        assert release.wait(10)

    monkeypatch.setattr(worker, "handle", handle)
    rt = _runtime(broker, partitions=3, apply_threads=1)
    consumers = worker.PartitionConsumers(rt, shared=False)  # type: ignore[arg-type]
    _send(broker, 0, ["first"])
    consumers.start()
    try:
        assert first_running.wait(10)
        for p in range(3):
            _send(broker, p, [f"k{p}"])
        time.sleep(0.3)  # the consumers fetch and hand them over meanwhile
        release.set()
        _wait(lambda: sum(map(len, calls)) == 4, "every key applied")
    finally:
        rt.stop.set()
        consumers.stop()
    assert calls[0] == ["first"]
    assert sorted(calls[1]) == ["k0", "k1", "k2"]  # one apply for the three partitions


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # on purpose
def test_an_applier_that_dies_is_started_again_and_the_partition_goes_on(
        monkeypatch: Any) -> None:
    from dramatiq.brokers.stub import StubBroker

    from sync.daemon import worker
    from sync.daemon.partitions import queue_name

    broker = StubBroker()
    broker.declare_queue(queue_name("p", 0))
    applied: list[list[str]] = []
    real_merged = worker._merged
    calls = {"n": 0}

    def merged(batch: list[Any]) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:  # outside the per-message guard: kills the applier thread
            raise SystemExit("applier dies")
        return real_merged(batch)

    monkeypatch.setattr(worker, "_merged", merged)
    monkeypatch.setattr(worker, "handle", lambda rt, e, keys, meta: applied.append(keys))
    rt = _runtime(broker, partitions=1, apply_threads=1)
    consumers = worker.PartitionConsumers(rt, shared=False)  # type: ignore[arg-type]
    _send(broker, 0, ["lost-with-the-applier"])  # the outbox's sweeper re-sends such keys
    consumers.start()
    try:
        _wait(lambda: calls["n"] >= 1, "the applier to die")
        _send(broker, 0, ["after"])
        _wait(lambda: applied == [["after"]], "the partition to apply again")
    finally:
        rt.stop.set()
        consumers.stop()
    assert not consumers.appliers[0].alive()  # stopped with the consumers


def test_an_ack_that_fails_does_not_leave_the_partition_waiting(monkeypatch: Any) -> None:
    """The broker going away mid-ack: the consumer starts over and the partition goes
    on (it once waited for good for a message it had counted as never handed back)."""
    from dramatiq.brokers.stub import StubBroker

    from sync.daemon import worker
    from sync.daemon.partitions import queue_name

    broker = StubBroker()
    broker.declare_queue(queue_name("p", 0))
    applied: list[list[str]] = []
    failed = threading.Event()

    class FlakyConsumer:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __next__(self) -> Any:
            return next(self.inner)

        def ack(self, msg: Any) -> None:
            if not failed.is_set():
                failed.set()
                raise ConnectionError("the broker went away")
            self.inner.ack(msg)

        def close(self) -> None:
            self.inner.close()

    class FlakyBroker:
        def consume(self, *args: Any, **kwargs: Any) -> FlakyConsumer:
            return FlakyConsumer(broker.consume(*args, **kwargs))

    monkeypatch.setattr(worker, "handle", lambda rt, e, keys, meta: applied.append(keys))
    rt = _runtime(broker, partitions=1, apply_threads=1)
    rt.broker = FlakyBroker()
    consumers = worker.PartitionConsumers(rt, shared=False)  # type: ignore[arg-type]
    _send(broker, 0, ["first"])
    consumers.start()
    try:
        _wait(failed.is_set, "the failed ack")
        _send(broker, 0, ["after"])
        _wait(lambda: ["after"] in applied, "the partition to apply again")
    finally:
        rt.stop.set()
        consumers.stop()
