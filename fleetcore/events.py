"""In-transaction domain events: a domain says what happened, the composition root wires who listens.

A lower domain (maintenance, procurement) must not know the domains that react to it (finance books the costs), so
it `emit`s an event on its own connection and the listeners run right there, in the same transaction: what they
write commits or rolls back with the event itself. A listener's error fails the event. With no listener wired (a
bare script), the event is a no-op; every process of the platform wires its listeners at start (fleetapp.wiring).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Handler = Callable[..., Any]
_handlers: dict[str, list[Handler]] = {}


def subscribe(name: str, handler: Handler) -> None:
    """Register a listener (idempotent: the same function is registered once)."""
    hs = _handlers.setdefault(name, [])
    if handler not in hs:
        hs.append(handler)


def emit(conn: Any, name: str, **payload: Any) -> None:
    """Run every listener of `name` with the connection and the payload, in the caller's transaction."""
    for handler in _handlers.get(name, ()):
        handler(conn, **payload)


def listeners(name: str) -> tuple[Handler, ...]:
    return tuple(_handlers.get(name, ()))
