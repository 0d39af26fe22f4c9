"""What a Bot API method handler works with."""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.botapi.limits import RateLimiter
from sandbox.botapi.state import World


@dataclass(frozen=True)
class Context:
    """The world a method acts on and the limiter its sends go through."""

    world: World
    limiter: RateLimiter
