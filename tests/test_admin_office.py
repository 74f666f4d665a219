"""Administration: supplies (plan, receipt, requisition with approval, issue, reorder notice, stock count variance),
facility requests, rooms with the database refusing overlapping bookings (a race: exactly one winner), minutes and
action items."""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests import factories
from tests.test_orders_helpers import api, token

pytestmark = [pytest.mark.db]


def test_supplies_plan_requisition_issue_reorder_notice_and_count(settings, conn):
    with api(settings) as client:
        admin, other_admin = token(client, conn, "admin"), token(client, conn, "admin")
        cs = token(client, conn, "customer_service")
        r = client.post("/api/v1/admin/supplies/items", headers=admin, json={
            "sku": "PAPER-A4", "name": "A4 paper, 500 sheets", "unit": "ream", "reorder_point": 5,
            "reorder_qty": 20, "unit_cost": "4.20"})  # fmt: skip
        assert r.status_code == 201
        paper = r.json()
        assert (
            client.post(
                "/api/v1/admin/supplies/items", headers=cs, json={"sku": "X1", "name": "x"}
            ).status_code
            == 403
        )
        plan = client.post("/api/v1/admin/supplies/plans", headers=admin, json={"period": "2026-12"}).json()
        assert plan["lines"] == [{"item_id": paper["id"], "qty": 20, "unit_cost": "4.20", "amount": "84.00"}]
        assert client.post(f"/api/v1/admin/supplies/plans/{plan['id']}/status", headers=admin,
                           json={"status": "received"}).status_code == 409  # approve first  # fmt: skip
        for s in ("approved", "received"):
            client.post(
                f"/api/v1/admin/supplies/plans/{plan['id']}/status", headers=admin, json={"status": s}
            )
        assert client.get("/api/v1/admin/supplies/items", headers=cs).json()[0]["stock"] == 20

        req = client.post("/api/v1/admin/supplies/requisitions", headers=cs,
                          json={"lines": [{"item_id": paper["id"], "qty": 16}], "purpose": "printer"}).json()  # fmt: skip
        assert req["department"] == "customer_service" and req["status"] == "pending"
        assert (
            client.post(f"/api/v1/admin/supplies/requisitions/{req['id']}/issue", headers=admin).status_code
            == 409
        )
        r = client.post(f"/api/v1/admin/supplies/requisitions/{req['id']}/decision", headers=other_admin,
                        json={"approve": True})  # fmt: skip
        assert r.json()["status"] == "approved"
        r = client.post(f"/api/v1/admin/supplies/requisitions/{req['id']}/issue", headers=admin)
        assert r.status_code == 200 and r.json()["status"] == "issued"
        notes = client.get("/api/v1/notifications", headers=admin).json()
        assert [n["kind"] for n in notes] == ["admin.reorder_point"] and "4 ream left" in notes[0]["title"]
        # More than there is: refused, nothing moves.
        big = client.post("/api/v1/admin/supplies/requisitions", headers=cs,
                          json={"lines": [{"item_id": paper["id"], "qty": 9}]}).json()  # fmt: skip
        client.post(
            f"/api/v1/admin/supplies/requisitions/{big['id']}/decision", headers=admin, json={"approve": True}
        )
        r = client.post(f"/api/v1/admin/supplies/requisitions/{big['id']}/issue", headers=other_admin)
        assert r.status_code == 409 and r.json()["error"]["details"]["stock"] == 4
        r = client.post("/api/v1/admin/supplies/counts", headers=admin,
                        json={"lines": [{"item_id": paper["id"], "counted": 3}], "note": "December count"})  # fmt: skip
        assert r.json()["lines"][0] | {} == {"item_id": paper["id"], "sku": "PAPER-A4", "expected": 4, "counted": 3,
                                             "variance": -1, "variance_value": "-4.20"}  # fmt: skip
    moves = conn.execute("SELECT reason, qty FROM stock_movements ORDER BY id").fetchall()
    assert [(m["reason"], m["qty"]) for m in moves] == [("purchase", 20), ("issue", -16), ("count", -1)]


def test_facility_requests(settings, conn):
    with api(settings) as client:
        admin, tech = token(client, conn, "admin"), token(client, conn, "technician")
        fixer = factories.user(conn, role="technician")
        r = client.post("/api/v1/admin/facilities/requests", headers=tech, json={
            "location": "Workshop bay 2", "category": "electrical", "description": "Lift socket sparks",
            "priority": "urgent"})  # fmt: skip
        assert r.status_code == 201
        rid = r.json()["id"]
        assert client.patch(f"/api/v1/admin/facilities/requests/{rid}", headers=tech,
                            json={"status": "done"}).status_code == 403  # fmt: skip
        r = client.patch(f"/api/v1/admin/facilities/requests/{rid}", headers=admin,
                         json={"status": "in_progress", "assignee": fixer["username"]})  # fmt: skip
        assert r.json()["assignee"] == fixer["username"]
        r = client.patch(f"/api/v1/admin/facilities/requests/{rid}", headers=admin, json={"status": "done"})
        assert r.json()["done_at"] is not None
        assert client.patch(f"/api/v1/admin/facilities/requests/{rid}", headers=admin,
                            json={"status": "open"}).status_code == 409  # fmt: skip


def test_two_concurrent_bookings_of_one_room_have_exactly_one_winner(settings, conn):
    n = 6
    start = dt.datetime(2027, 3, 1, 9, 0, tzinfo=dt.UTC)
    with api(settings) as client:
        admin = token(client, conn, "admin")
        staff = [token(client, conn, role) for role in ("hr", "finance", "dispatcher", "technician",
                                                         "customer_service", "hr")]  # fmt: skip
        room = client.post("/api/v1/admin/rooms", headers=admin,
                           json={"code": "R-201", "name": "Meeting room 201", "capacity": 8}).json()  # fmt: skip
        barrier = threading.Barrier(n)

        def book(i: int) -> int:
            # Each asks for an overlapping slot (the same hour, shifted by minutes).
            body = {"room_id": room["id"], "title": f"meeting {i}",
                    "starts_at": (start + dt.timedelta(minutes=5 * i)).isoformat(),
                    "ends_at": (start + dt.timedelta(minutes=60 + 5 * i)).isoformat()}  # fmt: skip
            barrier.wait()
            return client.post("/api/v1/admin/bookings", headers=staff[i], json=body).status_code

        with ThreadPoolExecutor(n) as pool:
            codes = sorted(pool.map(book, range(n)))
        assert codes == [201] + [409] * (n - 1), codes
        # Back to back is fine; a clash names the booking it clashes with.
        nxt = client.post("/api/v1/admin/bookings", headers=admin, json={
            "room_id": room["id"], "title": "after", "starts_at": (start + dt.timedelta(hours=3)).isoformat(),
            "ends_at": (start + dt.timedelta(hours=4)).isoformat(), "attendees": []})  # fmt: skip
        assert nxt.status_code == 201
        clash = client.post("/api/v1/admin/bookings", headers=admin, json={
            "room_id": room["id"], "title": "clash", "starts_at": (start + dt.timedelta(hours=3, minutes=30)).isoformat(),
            "ends_at": (start + dt.timedelta(hours=5)).isoformat()})  # fmt: skip
        assert (
            clash.status_code == 409 and clash.json()["error"]["details"]["booking"]["id"] == nxt.json()["id"]
        )
        # Cancelled: the slot is free again. Minutes with an action item for an owner, who completes it.
        owner = factories.user(conn, role="finance")
        bid = nxt.json()["id"]
        r = client.post(f"/api/v1/admin/bookings/{bid}/minutes", headers=admin, json={
            "minutes": "Budget for Q2 agreed.", "actions": [
                {"description": "Send the budget to the board", "owner": owner["username"], "due_on": "2027-03-08"}]})  # fmt: skip
        assert r.status_code == 200 and r.json()["actions"][0]["status"] == "open"
        owner_h = {"Authorization": "Bearer " + client.post("/api/v1/auth/token", data={
            "username": owner["username"], "password": owner["password"]}).json()["access_token"]}  # fmt: skip
        mine = client.get("/api/v1/admin/actions/mine", headers=owner_h).json()
        assert [a["description"] for a in mine] == ["Send the budget to the board"]
        assert (
            client.post(f"/api/v1/admin/actions/{mine[0]['id']}/done", headers=owner_h).json()["status"]
            == "done"
        )
        assert client.post(f"/api/v1/admin/bookings/{bid}/cancel", headers=admin).status_code == 200
        again = client.post("/api/v1/admin/bookings", headers=admin, json={
            "room_id": room["id"], "title": "clash", "starts_at": (start + dt.timedelta(hours=3, minutes=30)).isoformat(),
            "ends_at": (start + dt.timedelta(hours=5)).isoformat()})  # fmt: skip
        assert again.status_code == 201
    live = conn.execute("SELECT count(*) AS n FROM room_bookings WHERE cancelled_at IS NULL").fetchone()["n"]
    assert live == 2
