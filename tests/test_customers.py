"""Customers: CRUD through the API, roles, validation, pagination, and the pure qualification rules."""

from __future__ import annotations

import datetime as dt

from backoffice.customers.service import age_on, failed_rules
from tests.test_orders_helpers import api, create_customer, customer_body, token

RULE = {"vehicle_class": "premium", "min_age": 25, "required_licence_class": "B"}
PICKUP = dt.date(2027, 6, 1)
RETURN = dt.date(2027, 6, 5)


def _qualified(**over) -> dict:
    c = {
        "date_of_birth": dt.date(1990, 1, 1),
        "id_document_number": "X1",
        "licence_number": "L1",
        "licence_class": "B",
        "licence_expiry": dt.date(2030, 1, 1),
        "blacklisted": False,
    }
    c.update(over)
    return c


def test_age_on_birthday_boundary():
    assert age_on(dt.date(2002, 6, 1), dt.date(2027, 6, 1)) == 25
    assert age_on(dt.date(2002, 6, 2), dt.date(2027, 6, 1)) == 24
    assert age_on(dt.date(2004, 2, 29), dt.date(2025, 2, 28)) == 20


def test_failed_rules_each_rule_named():
    assert failed_rules(_qualified(), RULE, pickup_day=PICKUP, return_day=RETURN) == []
    young = failed_rules(
        _qualified(date_of_birth=dt.date(2002, 6, 2)), RULE, pickup_day=PICKUP, return_day=RETURN
    )
    assert [f["rule"] for f in young] == ["min_age"] and young[0]["age"] == 24
    # licence must be valid through the END of the rental, not just at pickup
    expiring = failed_rules(
        _qualified(licence_expiry=dt.date(2027, 6, 4)), RULE, pickup_day=PICKUP, return_day=RETURN
    )
    assert [f["rule"] for f in expiring] == ["licence_valid"]
    assert failed_rules(_qualified(licence_expiry=RETURN), RULE, pickup_day=PICKUP, return_day=RETURN) == []
    black = failed_rules(
        _qualified(blacklisted=True, blacklist_reason="fraud"), RULE, pickup_day=PICKUP, return_day=RETURN
    )
    assert [f["rule"] for f in black] == ["not_blacklisted"]
    incomplete = failed_rules(
        _qualified(licence_number=None, date_of_birth=None), RULE, pickup_day=PICKUP, return_day=RETURN
    )
    assert incomplete[0]["rule"] == "profile_complete"
    assert set(incomplete[0]["missing"]) == {"licence_number", "date_of_birth"}
    wrong_cat = failed_rules(_qualified(licence_class="A,AM"), RULE, pickup_day=PICKUP, return_day=RETURN)
    assert [f["rule"] for f in wrong_cat] == ["licence_class"]


def test_customer_crud_filters_pagination_and_audit(settings, conn):
    with api(settings) as client:
        cs = token(client, conn, "customer_service")
        created = [
            create_customer(client, cs, last_name=f"Kunde{i}", email=f"k{i}@example.com") for i in range(5)
        ]
        c0 = created[0]
        assert c0["licence_number"] == "B072RRE2I55" and c0["blacklisted"] is False

        page = client.get("/api/v1/customers", params={"limit": 2, "offset": 2}, headers=cs).json()
        assert page["total"] == 5 and [c["id"] for c in page["items"]] == [created[2]["id"], created[3]["id"]]
        found = client.get("/api/v1/customers", params={"q": "kunde4"}, headers=cs).json()
        assert [c["id"] for c in found["items"]] == [created[4]["id"]]

        # blacklisting needs a reason
        r = client.patch(f"/api/v1/customers/{c0['id']}", json={"blacklisted": True}, headers=cs)
        assert r.status_code == 422 and "blacklist_reason" in r.json()["error"]["message"]
        r = client.patch(
            f"/api/v1/customers/{c0['id']}",
            json={"blacklisted": True, "blacklist_reason": "unpaid"},
            headers=cs,
        )
        assert r.status_code == 200 and r.json()["blacklist_reason"] == "unpaid"
        black = client.get("/api/v1/customers", params={"blacklisted": True}, headers=cs).json()
        assert [c["id"] for c in black["items"]] == [c0["id"]]
        r = client.patch(f"/api/v1/customers/{c0['id']}", json={"blacklisted": False}, headers=cs)
        assert r.json()["blacklisted"] is False and r.json()["blacklist_reason"] is None

        # null for a required field is a 422, not a 500
        r = client.patch(f"/api/v1/customers/{c0['id']}", json={"first_name": None}, headers=cs)
        assert r.status_code == 422
        # duplicate email → 409
        r = client.post("/api/v1/customers", json=customer_body(email="K1@example.com"), headers=cs)
        assert r.status_code == 409
        # bad input → 422 with the field named
        r = client.post("/api/v1/customers", json=customer_body(email="not-an-email"), headers=cs)
        assert r.status_code == 422 and "email" in r.json()["error"]["message"]
        r = client.post("/api/v1/customers", json=customer_body(date_of_birth="2999-01-01"), headers=cs)
        assert r.status_code == 422

        r = client.delete(f"/api/v1/customers/{created[1]['id']}", headers=cs)
        assert r.status_code == 204
        assert client.get(f"/api/v1/customers/{created[1]['id']}", headers=cs).status_code == 404

    actions = [
        r["action"]
        for r in conn.execute(
            "SELECT action FROM audit_log WHERE entity = 'customers' ORDER BY id"
        ).fetchall()
    ]
    assert actions.count("customer.create") == 5
    assert actions.count("customer.update") == 2 and actions.count("customer.delete") == 1


def test_customer_routes_roles(settings, conn):
    with api(settings) as client:
        assert client.get("/api/v1/customers").status_code == 401
        tech = token(client, conn, "technician")
        assert client.get("/api/v1/customers", headers=tech).status_code == 403
        disp = token(client, conn, "dispatcher")
        assert client.get("/api/v1/customers", headers=disp).status_code == 200
        assert client.post("/api/v1/customers", json=customer_body(), headers=disp).status_code == 403
        admin = token(client, conn, "admin")
        assert client.post("/api/v1/customers", json=customer_body(), headers=admin).status_code == 201
