"""Alerts API and the live stream.

REST: list / get / acknowledge / resolve alerts (dispatchers and technicians; admin always).
WebSocket `/api/v1/stream`: new and changed alerts and vehicle state changes as JSON, fed by PostgreSQL LISTEN
on `fleet_alerts` (the monitor process NOTIFYs in the transaction that writes the alert), so any number of API
processes push the same events without talking to the monitor.

The stream's token never travels in the URL (URLs land in access logs, proxies and browser history). A client
authenticates with, in order of preference for browsers: its first message `{"type": "auth", "token": "<JWT>"}`
(within AUTH_TIMEOUT_S), or the subprotocol offer `Sec-WebSocket-Protocol: bearer, <JWT>` (the server selects
`bearer`); non-browser clients may send `Authorization: Bearer <JWT>`. `?token=` is refused (4401, with a reason
that says what to do instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
from typing import Annotated

import psycopg
from fastapi import APIRouter, Depends, FastAPI, Query, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool

from fleetcore.api.deps import ConnDep, borrow, require_roles
from fleetcore.api.errors import ERROR_RESPONSES
from fleetcore.errors import ServiceUnavailable
from monitor import service
from monitor.models import STATUSES, AlertOut, AlertPage, ResolveIn

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["alerts"], responses=ERROR_RESPONSES)
STREAM_ROLES = ("dispatcher", "technician")
Ops = Annotated[dict, Depends(require_roles(*STREAM_ROLES))]
CLIENT_QUEUE = 1000  # messages buffered per WebSocket client before it is dropped as too slow
LISTEN_RETRY_S = 1.0
# WebSocket close codes in the 4000-4999 application range, mirroring HTTP 401/403.
WS_UNAUTHORIZED, WS_FORBIDDEN, WS_TOO_SLOW = 4401, 4403, 4408
WS_TRY_AGAIN_LATER = 1013  # RFC 6455: the server is overloaded (no database connection free)
# How long a client that offered no token in its handshake has to send its auth message.
AUTH_TIMEOUT_S = 5.0
BEARER_PROTOCOL = "bearer"
# A close frame carries at most 123 bytes of reason (RFC 6455 §5.5: control frames are at most 125 bytes).
URL_TOKEN_REFUSED = (
    'token in URL refused: send {"type":"auth","token":JWT} as the first message, or subprotocols bearer,JWT'
)


def _split(values: list[str] | None) -> list[str] | None:
    """Accept repeated parameters and comma-separated lists alike."""
    if not values:
        return None
    out = [v.strip() for item in values for v in item.split(",") if v.strip()]
    return out or None


@router.get("/alerts", response_model=AlertPage)
def list_alerts(
    conn: ConnDep,
    user: Ops,
    status: Annotated[list[str] | None, Query(description=f"{', '.join(STATUSES)} (comma-separated)")] = None,
    kind: Annotated[list[str] | None, Query()] = None,
    severity: Annotated[list[str] | None, Query()] = None,
    vehicle: Annotated[str | None, Query(description="VIN")] = None,
    start: Annotated[dt.datetime | None, Query(alias="from")] = None,
    end: Annotated[dt.datetime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict:
    """Alerts, newest first; `from`/`to` select alerts active at any time in the window."""
    items, total = service.list_(
        conn, status=_split(status), kind=_split(kind), severity=_split(severity),
        vin=vehicle.upper() if vehicle else None, start=start, end=end, limit=limit, offset=offset,
    )  # fmt: skip
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.get("/alerts/{alert_id}", response_model=AlertOut)
def get_alert(alert_id: int, conn: ConnDep, user: Ops) -> dict:
    return service.get_or_raise(conn, alert_id=alert_id)


@router.post("/alerts/{alert_id}/ack", response_model=AlertOut)
def ack_alert(alert_id: int, conn: ConnDep, user: Ops) -> dict:
    """Acknowledge: someone is on it (who and when are recorded)."""
    return service.ack(conn, alert_id=alert_id, user=user)


@router.post("/alerts/{alert_id}/resolve", response_model=AlertOut)
def resolve_alert(alert_id: int, conn: ConnDep, user: Ops, body: ResolveIn | None = None) -> dict:
    """Resolve with a note; a vehicle with no other critical alert becomes rentable again."""
    return service.resolve(conn, alert_id=alert_id, user=user, note=(body.note if body else ""))


class StreamHub:
    """One LISTEN connection per API process, fanned out to every connected WebSocket."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self.clients: set[asyncio.Queue[str]] = set()
        self.listening = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.received = 0

    async def start(self) -> None:
        self.task = asyncio.create_task(self._listen(), name="alerts-listen")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task

    async def _listen(self) -> None:
        while True:
            try:
                aconn = await psycopg.AsyncConnection.connect(self.db_url, autocommit=True)
                async with aconn:
                    await aconn.execute(f"LISTEN {service.CHANNEL}")
                    self.listening.set()
                    async for n in aconn.notifies():
                        self.received += 1
                        self.broadcast(n.payload)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.listening.clear()
                log.exception("alert listener failed; reconnecting")
                await asyncio.sleep(LISTEN_RETRY_S)

    def broadcast(self, payload: str) -> None:
        for q in list(self.clients):
            try:
                q.put_nowait(payload)
            except asyncio.QueueFull:
                # Too slow to keep up: stop feeding it; its sender closes it after what is buffered.
                self.clients.discard(q)
                q.overflowed = True  # type: ignore[attr-defined]


def _handshake_token(ws: WebSocket) -> tuple[str | None, str | None]:
    """(token, subprotocol to select) from the handshake: an `Authorization: Bearer` header, or the subprotocol
    offer `bearer, <token>`. The token itself is never echoed back as the selected subprotocol."""
    auth = ws.headers.get("authorization", "")
    offered = [p.strip() for p in ws.scope.get("subprotocols", []) if p.strip()]
    chosen = BEARER_PROTOCOL if offered and offered[0].lower() == BEARER_PROTOCOL else None
    if auth.lower().startswith("bearer ") and auth[7:].strip():
        return auth[7:].strip(), chosen
    if chosen and len(offered) > 1:
        return offered[1], chosen
    return None, chosen


async def _first_message_token(ws: WebSocket) -> str | None:
    """The token of the client's first message `{"type": "auth", "token": ...}`, if it comes in time."""
    try:
        msg = await asyncio.wait_for(ws.receive(), AUTH_TIMEOUT_S)
    except TimeoutError:
        return None
    if msg["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(msg.get("code", 1000))
    try:
        body = json.loads(msg.get("text") or msg.get("bytes") or b"")
    except ValueError:
        return None
    if isinstance(body, dict) and body.get("type") == "auth" and isinstance(body.get("token"), str):
        return body["token"] or None
    return None


async def _authorise(ws: WebSocket, token: str | None) -> tuple[dict | None, int]:
    if not token:
        return None, WS_UNAUTHORIZED
    try:
        async with borrow(ws.app) as conn:  # same checks as HTTP routes, incl. revoked tokens
            user = await run_in_threadpool(ws.app.state.authenticate, conn, token)
    except ServiceUnavailable:
        return None, WS_TRY_AGAIN_LATER
    if user is None:
        return None, WS_UNAUTHORIZED
    if user["role"] not in (*STREAM_ROLES, "admin"):
        return None, WS_FORBIDDEN
    return user, 0


@router.websocket("/stream")
async def stream(ws: WebSocket) -> None:
    """Live alerts and vehicle state changes. Authenticate with the first message `{"type": "auth", "token":
    "<JWT>"}`, the subprotocols `bearer, <JWT>`, or an `Authorization: Bearer` header; never `?token=`."""
    token, subprotocol = _handshake_token(ws)
    # Accepted before anything is refused, so the client sees the close code and reason (a refusal before the
    # handshake completes reaches a browser as a bare failed connection, HTTP 403).
    await ws.accept(subprotocol=subprotocol)
    if "token" in ws.query_params:
        await ws.close(code=WS_UNAUTHORIZED, reason=URL_TOKEN_REFUSED)
        return
    if token is None:
        try:
            token = await _first_message_token(ws)
        except WebSocketDisconnect:
            return
    user, code = await _authorise(ws, token)
    if user is None:
        await ws.close(
            code=code, reason="" if code != WS_UNAUTHORIZED else "missing, invalid or revoked token"
        )
        return
    hub: StreamHub = ws.app.state.stream_hub
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(hub.listening.wait(), 5.0)
    q: asyncio.Queue[str] = asyncio.Queue(maxsize=CLIENT_QUEUE)
    hub.clients.add(q)
    try:
        await ws.send_text(
            json.dumps({"type": "hello", "user": user["username"], "listening": hub.listening.is_set()})
        )

        async def sender() -> None:
            while True:
                msg = await q.get()
                await ws.send_text(msg)
                if q.empty() and getattr(q, "overflowed", False):
                    await ws.close(code=WS_TOO_SLOW)
                    return

        async def receiver() -> None:
            while True:
                await ws.receive_text()  # clients may send pings; a disconnect raises

        tasks = {asyncio.create_task(sender()), asyncio.create_task(receiver())}
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in pending:
            t.cancel()
        for t in done:
            exc = t.exception()
            if exc and not isinstance(exc, WebSocketDisconnect):
                log.warning("stream client error: %s", exc)
    finally:
        hub.clients.discard(q)


def setup(app: FastAPI) -> None:
    """Start the LISTEN task with the app and stop it on shutdown."""

    async def start(app: FastAPI) -> None:
        app.state.stream_hub = StreamHub(app.state.settings.require_database_url())
        await app.state.stream_hub.start()

    async def stop(app: FastAPI) -> None:
        hub = getattr(app.state, "stream_hub", None)
        if hub is not None:
            await hub.stop()

    app.state.startup_hooks.append(start)
    app.state.shutdown_hooks.append(stop)
