"""The broker, chosen from the settings in this one place (DESIGN "Embedded and distributed").

REDIS_URL set: a RedisBroker — `closeout worker` processes on any host consume
it, and the bot and the scheduler enqueue on it. REDIS_URL unset: a StubBroker
served by a `dramatiq.Worker` in the same process (`closeout run`); its queue is
memory, which a crash loses — the outbox rows are not lost, and the pump
re-enqueues them (tasks.delivery.pump).

`setup_broker` sets Dramatiq's global broker explicitly; nothing here (or in
the actor modules) falls back to the broker Dramatiq's `get_broker()` would
create on first use. Actor modules declare their actors with
`broker=configured_broker()`, which refuses to run before `setup_broker`, and
`tasks.load_actors(settings)` is the one way in: it sets the broker up, then
imports the actor modules.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from settings import Settings

#: Prefix of every Redis key of a deployment (queues and the limiter's windows).
DEFAULT_NAMESPACE = "closeout"
#: Default time limit of an actor; actors with slower work set their own.
DEFAULT_TIME_LIMIT = 5 * 60 * 1000  # ms
#: Default retries of an actor that raised (a database that went away, a bug).
#: Telegram's answers are not exceptions to the delivery job: it keeps its own
#: count on the notification row (see tasks.delivery).
DEFAULT_MAX_RETRIES = 5
#: First back-off of such a retry; it doubles each time.
DEFAULT_MIN_BACKOFF = 5_000  # ms
#: Longest back-off of such a retry.
DEFAULT_MAX_BACKOFF = 10 * 60 * 1000  # ms
#: A Redis worker that sent no heartbeat for this long is taken for dead and its
#: unacknowledged messages are put back on the queue (Dramatiq's own recovery).
HEARTBEAT_TIMEOUT = 60_000  # ms
#: Worker threads of the in-process worker of `closeout run`.
EMBEDDED_THREADS = 4

_configured: dramatiq.Broker | None = None


def middleware() -> list[Middleware]:
    """The middleware of both brokers: Dramatiq's defaults, with our limits."""
    return [
        AgeLimit(),
        TimeLimit(time_limit=DEFAULT_TIME_LIMIT),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        Retries(
            max_retries=DEFAULT_MAX_RETRIES,
            min_backoff=DEFAULT_MIN_BACKOFF,
            max_backoff=DEFAULT_MAX_BACKOFF,
        ),
    ]


def setup_broker(settings: Settings, *, namespace: str = DEFAULT_NAMESPACE) -> dramatiq.Broker:
    """Build the broker the settings call for and make it Dramatiq's global broker.

    Parameters:
        namespace: prefix of the Redis keys, so deployments (or test runs)
            sharing one Redis server never see each other's queues.

    Returns:
        A RedisBroker on REDIS_URL, or a StubBroker when REDIS_URL is unset
        (serve it with `start_embedded_worker`).
    """
    global _configured
    broker: dramatiq.Broker
    if settings.REDIS_URL:
        broker = RedisBroker(
            url=settings.REDIS_URL,
            namespace=namespace,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            middleware=middleware(),
        )
    else:
        broker = StubBroker(middleware=middleware())
        broker.emit_after("process_boot")
    dramatiq.set_broker(broker)
    _configured = broker
    return broker


def configured_broker() -> dramatiq.Broker:
    """The broker `setup_broker` made; for actor declarations.

    Raises:
        RuntimeError: when `setup_broker` (or `tasks.load_actors`) has not run,
            rather than letting Dramatiq make a broker of its own.
    """
    if _configured is None:
        raise RuntimeError(
            "no broker: call tasks.load_actors(settings) before importing an actor module"
        )
    return _configured


def start_embedded_worker(
    broker: dramatiq.Broker, *, threads: int = EMBEDDED_THREADS
) -> dramatiq.Worker:
    """Start a worker in this process on `broker`; stop it with `worker.stop()`.

    For the StubBroker of `closeout run` (and for tests); it works on a
    RedisBroker too. The worker's threads are daemons of this process.
    """
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=100)
    worker.start()
    return worker


def queue_backlog(broker: dramatiq.Broker, queue_name: str) -> int:
    """Messages on `queue_name` waiting or being processed (not its delay queue)."""
    if isinstance(broker, RedisBroker):
        return int(broker.client.hlen(f"{broker.namespace}:{queue_name}.msgs"))
    if isinstance(broker, StubBroker) and queue_name in broker.queues:
        return int(broker.queues[queue_name].unfinished_tasks)
    return 0
