"""The dramatiq broker from the pipeline's ``broker.url``.

``memory://`` is dramatiq's in-process stub broker (the embedded default:
nothing but Python); ``redis://`` and ``amqp://`` are the real ones. Dramatiq's
own retries are off for our actors (retries happen inside the actor, with
backoff, so that per-key order holds); its time limit is raised from 10
minutes to an hour since a large apply batch is legitimate work.
"""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.middleware import AgeLimit, Callbacks, Pipelines, Retries, TimeLimit


def make_broker(url: str) -> dramatiq.Broker:
    middleware = [AgeLimit(), TimeLimit(time_limit=3_600_000), Callbacks(), Pipelines(),
                  Retries(max_retries=0)]
    broker: Any
    if url.startswith("memory"):
        from dramatiq.brokers.stub import StubBroker

        broker = StubBroker(middleware=middleware)
    elif url.startswith("redis"):
        from dramatiq.brokers.redis import RedisBroker

        broker = RedisBroker(url=url, middleware=middleware)  # type: ignore[no-untyped-call]
    elif url.startswith("amqp"):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=url, middleware=middleware)
    else:  # the config refuses other schemes; this guards library use
        raise ValueError(f"unsupported broker URL scheme: {url.split(':', 1)[0]!r}")
    return broker  # type: ignore[no-any-return]
