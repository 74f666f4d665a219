"""The dispatcher console: the page at /console (bundled assets, no CDN) and the reads it aggregates.

Dispatchers (and admins) only. The page itself is public (it holds no data); it signs in through
POST /api/v1/auth/token like every client, reads through these routes and the alert routes, and listens on the
WebSocket /api/v1/stream.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query
from fastapi.staticfiles import StaticFiles

from backoffice.console import models as m
from backoffice.console import service
from fleetcore.api.deps import ConnDep, SettingsDep, require_roles
from fleetcore.api.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1/console", tags=["console"], responses=ERROR_RESPONSES)
Dispatcher = Annotated[dict, Depends(require_roles("dispatcher"))]
STATIC_DIR = Path(__file__).resolve().parent / "static"
PATH = "/console"


@router.get("/fleet", response_model=m.FleetOut)
def fleet(conn: ConnDep, user: Dispatcher) -> dict:
    """Every vehicle with its latest position, status and health; stations and geofences; the first cursor."""
    return service.fleet(conn)


@router.get("/positions", response_model=m.PositionsOut)
def positions(
    conn: ConnDep,
    user: Dispatcher,
    since: Annotated[dt.datetime, Query(description="the cursor of the previous answer (or of /fleet)")],
) -> dict:
    """Vehicles whose position, online flag or registry status changed since the cursor, as parallel arrays."""
    return service.positions_since(conn, since=since)


@router.get("/vehicles/{vin}", response_model=m.VehiclePanel)
def vehicle_panel(vin: str, conn: ConnDep, user: Dispatcher) -> dict:
    """Live state with DTC descriptions, the current order and the renter's contact, recent alerts, service plan."""
    return service.vehicle_panel(conn, vin=vin.upper())


@router.get("/board", response_model=m.BoardOut)
def board(
    conn: ConnDep,
    user: Dispatcher,
    settings: SettingsDep,
    day: Annotated[
        dt.date | None, Query(description="local day (default: today in FLEET_CONSOLE_TIMEZONE)")
    ] = None,
) -> dict:
    """Today's pickups and returns per station, relocations that balance the stations, blocked vehicles."""
    return service.board(conn, timezone=settings.console_timezone, day=day)


@router.get("/search", response_model=m.SearchOut)
def search(conn: ConnDep, user: Dispatcher, q: Annotated[str, Query(min_length=2, max_length=64)]) -> dict:
    """Vehicles by plate or VIN, customers by name (with the car of their running or next order)."""
    return service.search(conn, q=q)


class ConsoleFiles(StaticFiles):
    """The bundle; index.html is never cached (it names the assets by content hash), assets are."""

    async def get_response(self, path: str, scope):  # type: ignore[no-untyped-def]
        response = await super().get_response(path, scope)
        versioned = (scope.get("query_string") or b"").startswith(
            b"v="
        )  # index.html asks for assets?v=<hash>
        response.headers["cache-control"] = "public, max-age=31536000, immutable" if versioned else "no-cache"
        return response


def setup(app: FastAPI) -> None:
    """Serve the built console at /console (index.html for /console/)."""
    app.mount(PATH, ConsoleFiles(directory=STATIC_DIR, html=True, check_dir=False), name="console")
