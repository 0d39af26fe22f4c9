"""Dramatiq actors for the follow-ups: thin, idempotent, taking ids, not objects.

See ../shared/DESIGN.md "Delivery" and "Scheduling".

The one way in is `load_actors(settings)`:

1. `tasks.broker.setup_broker` builds the broker the settings call for and
   makes it Dramatiq's global broker — before any actor is declared;
2. the `Runtime` the actors reach (settings, engine, broker, the shared
   limiter, the Bot API client) is set;
3. the actor modules (every module of this package) are imported; they
   declare their actors with `broker=tasks.broker.configured_broker()`, so
   importing one before step 1 fails loudly instead of Dramatiq creating a
   broker of its own on first use. Called again (tests; a second broker), it
   binds the already-declared actors to the new broker.

Actors get what they need from `runtime()`, never from module-level state of
their own: `runtime().engine`, `runtime().settings`.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dramatiq
    from sqlalchemy import Engine

    from settings import Settings
    from tasks.limiter import Limiter, Rates
    from tasks.telegram import BotApi

#: Modules of this package that declare no actors (imported by those that do).
INFRASTRUCTURE = frozenset({"broker", "limiter", "telegram"})


@dataclass(frozen=True)
class Runtime:
    """What actors reach: set once per process by `load_actors`."""

    settings: Settings
    engine: Engine
    broker: dramatiq.Broker
    limiter: Limiter
    telegram: BotApi
    namespace: str
    #: Rows bundled into one message at most (models.delivery.BUNDLE_MAX).
    bundle_max: int


_runtime: Runtime | None = None


def runtime() -> Runtime:
    """The process's Runtime.

    Raises:
        RuntimeError: when `load_actors` has not run in this process.
    """
    if _runtime is None:
        raise RuntimeError("tasks.load_actors(settings) has not run in this process")
    return _runtime


def load_actors(
    settings: Settings,
    *,
    engine: Engine | None = None,
    namespace: str | None = None,
    rates: Rates | None = None,
    bundle_max: int | None = None,
) -> Runtime:
    """Set up the broker and the runtime from `settings`, then import every actor module.

    Parameters:
        engine: the database engine (default: one made from DATABASE_URL).
        namespace: prefix of the Redis keys (default tasks.broker.DEFAULT_NAMESPACE).
        rates: the limiter's windows (default: Telegram's, tasks.limiter.Rates()).
        bundle_max: rows per message at most (default models.delivery.BUNDLE_MAX).

    Returns:
        The Runtime, also available as `runtime()`.
    """
    global _runtime
    from models.db import make_engine
    from models.delivery import BUNDLE_MAX
    from tasks.broker import DEFAULT_NAMESPACE, setup_broker
    from tasks.limiter import make_limiter
    from tasks.telegram import BotApi

    namespace = namespace or DEFAULT_NAMESPACE
    if _runtime is not None:
        _runtime.limiter.close()
        _runtime.telegram.close()
    broker = setup_broker(settings, namespace=namespace)
    _runtime = Runtime(
        settings=settings,
        engine=engine or make_engine(settings.DATABASE_URL),
        broker=broker,
        limiter=make_limiter(settings.REDIS_URL, rates, namespace),
        telegram=BotApi(settings.TELEGRAM_API_URL, settings.BOT_TOKEN or ""),
        namespace=namespace,
        bundle_max=bundle_max or BUNDLE_MAX,
    )
    for module in actor_modules():
        _bind(module, broker)
    return _runtime


def actor_modules() -> list[ModuleType]:
    """Every module of this package but the infrastructure, imported, by name."""
    names = sorted(
        info.name
        for info in pkgutil.iter_modules(__path__)
        if not info.name.startswith("_") and info.name not in INFRASTRUCTURE
    )
    return [importlib.import_module(f"{__name__}.{name}") for name in names]


def _bind(module: ModuleType, broker: dramatiq.Broker) -> None:
    # An actor declared on an earlier broker (an earlier load_actors in this
    # process) is declared again on this one; a fresh import already is.
    import dramatiq

    for value in vars(module).values():
        if isinstance(value, dramatiq.Actor) and value.broker is not broker:
            value.broker = broker
            broker.declare_actor(value)
