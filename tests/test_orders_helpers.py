"""Helpers shared by the customer/order/rental tests (no tests here): API client, tokens, customers, orders."""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager

from fastapi.testclient import TestClient

from fleetapp.api import create_app
from fleetcore.db import Conn
from tests import factories

UTC = dt.UTC


@contextmanager
def api(settings):
    """A TestClient on the real app (lifespan runs: the pool opens and closes)."""
    with TestClient(create_app(settings)) as client:
        yield client


def token(client: TestClient, conn: Conn, role: str) -> dict:
    """Authorization headers for a fresh user with `role`."""
    u = factories.user(conn, role=role)
    r = client.post("/api/v1/auth/token", data={"username": u["username"], "password": u["password"]})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def customer_body(**over) -> dict:
    """A fully qualified adult customer (licence valid for years)."""
    body = {
        "first_name": "Erika",
        "last_name": "Mustermann",
        "email": None,
        "phone": "+49 30 1234567",
        "address": "Heidestrasse 17, 51147 Koeln",
        "date_of_birth": "1985-08-12",
        "id_document_type": "id_card",
        "id_document_number": "L01X00T47",
        "licence_number": "B072RRE2I55",
        "licence_class": "B",
        "licence_expiry": (dt.date.today() + dt.timedelta(days=3650)).isoformat(),
    }
    body.update(over)
    return body


def future(hours: float) -> str:
    """An ISO timestamp `hours` from now (UTC)."""
    return (dt.datetime.now(UTC) + dt.timedelta(hours=hours)).replace(microsecond=0).isoformat()


def next_weekday(weekday: int, hour: int = 10, min_days: int = 3) -> dt.datetime:
    """The next date (at least min_days ahead) falling on `weekday` (0=Monday) at hour:00 Europe/Berlin."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("Europe/Berlin")
    d = dt.datetime.now(tz).date() + dt.timedelta(days=min_days)
    while d.weekday() != weekday:
        d += dt.timedelta(days=1)
    return dt.datetime(d.year, d.month, d.day, hour, tzinfo=tz)


def create_customer(client: TestClient, headers: dict, **over) -> dict:
    r = client.post("/api/v1/customers", json=customer_body(**over), headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def create_order(
    client: TestClient,
    headers: dict,
    *,
    customer_id: int,
    pickup: str,
    ret: str | None = None,
    vehicle_class: str = "compact",
    pickup_at: str | None = None,
    return_at: str | None = None,
    channel: str = "counter",
    expect: int = 201,
) -> dict:
    body = {
        "customer_id": customer_id,
        "vehicle_class": vehicle_class,
        "pickup_station": pickup,
        "return_station": ret or pickup,
        "pickup_at": pickup_at or future(2),
        "return_at": return_at or future(2 + 72),
        "channel": channel,
    }
    r = client.post("/api/v1/orders", json=body, headers=headers)
    assert r.status_code == expect, r.text
    return r.json()


def set_state(
    conn: Conn,
    vehicle_id: int,
    *,
    odometer_km: float | None,
    fuel_pct: float | None,
    rentable: bool = True,
) -> None:
    """Write a vehicle's telemetry state directly (tests that are not about ingest)."""
    conn.execute(
        """UPDATE vehicle_state SET odometer_km = %s, fuel_pct = %s, ts = now(), last_seen = now(),
                  online = true, rentable = %s WHERE vehicle_id = %s""",
        (odometer_km, fuel_pct, rentable, vehicle_id),
    )
