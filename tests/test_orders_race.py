"""No overbooking, ever: concurrent confirmations of the last car yield exactly one success."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from backoffice.orders import service as orders
from fleetcore.db import connect, one
from fleetcore.errors import Conflict
from tests import factories
from tests.test_orders_helpers import api, create_customer, create_order, future, token

N = 10


def _setup(client, conn, cs) -> tuple[list[dict], dict]:
    """A station with two SUVs, one already booked for the period: ten pending orders for the one left."""
    s = factories.station(conn)
    factories.vehicle(conn, station_code=s["code"], vehicle_class="suv")
    factories.vehicle(conn, station_code=s["code"], vehicle_class="suv")
    cust = create_customer(client, cs)
    pickup, ret = future(48), future(96)
    first = create_order(
        client,
        cs,
        customer_id=cust["id"],
        pickup=s["code"],
        vehicle_class="suv",
        pickup_at=pickup,
        return_at=ret,
    )
    assert client.post(f"/api/v1/orders/{first['id']}/confirm", headers=cs).status_code == 200
    racing = [
        create_order(
            client,
            cs,
            customer_id=cust["id"],
            pickup=s["code"],
            vehicle_class="suv",
            pickup_at=pickup,
            return_at=ret,
        )
        for _ in range(N)
    ]
    return racing, s


def _assert_one_hold_per_vehicle(conn) -> None:
    rows = conn.execute(
        """SELECT a.vehicle_id, count(*) AS n FROM vehicle_assignments a WHERE a.released_at IS NULL
            GROUP BY a.vehicle_id"""
    ).fetchall()
    assert rows and all(r["n"] == 1 for r in rows)
    assert one(conn.execute("SELECT count(*) AS n FROM orders WHERE status = 'confirmed'"))["n"] == 2


def test_ten_concurrent_api_confirmations_for_the_last_car(settings, conn):
    with api(settings) as client:
        cs = token(client, conn, "customer_service")
        racing, _ = _setup(client, conn, cs)
        barrier = threading.Barrier(N)

        def confirm(order_id: int) -> tuple[int, dict]:
            barrier.wait()
            r = client.post(f"/api/v1/orders/{order_id}/confirm", headers=cs)
            return r.status_code, r.json()

        with ThreadPoolExecutor(N) as pool:
            results = list(pool.map(confirm, [o["id"] for o in racing]))
    codes = sorted(code for code, _ in results)
    assert codes == [200] + [409] * (N - 1), results
    assert all(body["error"]["details"]["rule"] == "availability" for code, body in results if code == 409)
    _assert_one_hold_per_vehicle(conn)


def test_ten_concurrent_transactions_for_the_last_car(settings, any_db_url, caplog):
    """The same race one level down, on TimescaleDB and plain PostgreSQL: ten connections, one transaction each."""
    db_url = any_db_url
    settings = settings.model_copy(update={"database_url": db_url})
    with api(settings) as client, connect(db_url, autocommit=True) as conn:
        cs = token(client, conn, "customer_service")
        racing, _ = _setup(client, conn, cs)
    actor = {"username": "race-test"}
    caplog.set_level(logging.INFO, logger="backoffice.orders.holds")
    barrier = threading.Barrier(N)

    def confirm(order_id: int) -> str:
        with connect(db_url) as c:  # not autocommit: one transaction per attempt
            # Read the order and customer first so every thread is past its checks when the barrier opens.
            c.execute("SELECT 1")
            barrier.wait()
            try:
                orders.confirm(c, order_id=order_id, actor=actor)
            except Conflict:
                c.rollback()
                return "conflict"
            c.commit()
            return "ok"

    with ThreadPoolExecutor(N) as pool:
        outcomes = list(pool.map(confirm, [o["id"] for o in racing]))
    assert sorted(outcomes) == ["conflict"] * (N - 1) + ["ok"], outcomes
    with connect(db_url, autocommit=True) as conn:
        _assert_one_hold_per_vehicle(conn)
    # How many losers the exclusion constraint stopped (not the Python availability check) depends on timing,
    # so it is reported, not asserted; test_orders.py checks the constraint itself rejects a double booking.
    lost = [r for r in caplog.records if "lost vehicle" in r.getMessage()]
    print(f"{len(lost)} of {N - 1} losers were rejected by the exclusion constraint")
