"""Care campaigns through the outbox and a real local SMTP server (opt-out respected, templates per locale, a
discount code per recipient that order pricing honours once), and the race: one code used concurrently."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from aiosmtpd.controller import Controller

from backoffice.notifications import service as outbox
from backoffice.notifications.smtp import SmtpSender
from backoffice.promotions import service as promotions
from fleetapp.embedded import free_port
from fleetcore.db import connect
from tests import factories
from tests.test_notifications import Inbox
from tests.test_orders_helpers import api, create_customer, create_order, future, token

pytestmark = [pytest.mark.db]
TEMPLATES = {
    "en": {
        "subject": "Spring offer for {first_name}",
        "body": "Dear {first_name}, use {code} for {percent} % off "
        "your next rental (valid until {valid_until}).",
    },  # fmt: skip
    "zh-CN": {
        "subject": "{last_name}{first_name}，春季租车优惠",
        "body": "您的专属折扣码：{code}，享{percent}折扣，有效期至{valid_until}。",
    },
}


@pytest.fixture
def mail_server() -> Iterator[tuple[Inbox, str]]:
    """A real SMTP server on a free local port (aiosmtpd), keeping what it receives."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()


def test_campaign_sends_through_smtp_respects_opt_out_and_its_codes_price_orders(
    settings, conn, db_url, mail_server
):
    inbox, url = mail_server
    station = factories.station(conn)
    with api(settings) as client:
        cs = token(client, conn, "customer_service")
        anna = create_customer(client, cs, email="anna@example.com", first_name="Anna")
        li = create_customer(client, cs, email="li.na@example.cn", first_name="娜", last_name="李",
                             licence_number="C1234567")  # fmt: skip
        quiet = create_customer(
            client, cs, email="quiet@example.com", first_name="Quiet", licence_number="Q1234567"
        )
        create_customer(client, cs, email=None, first_name="Nomail", licence_number="N1234567")
        assert client.put(f"/api/v1/support/customers/{quiet['id']}/preferences", headers=cs,
                          json={"marketing_opt_out": True}).status_code == 200  # fmt: skip
        client.put(f"/api/v1/support/customers/{li['id']}/preferences", headers=cs,
                   json={"marketing_opt_out": False, "locale": "zh-CN"})  # fmt: skip
        bad = client.post("/api/v1/support/campaigns", headers=cs, json={
            "name": "x", "kind": "care", "templates": {"en": {"subject": "{nope}", "body": "b"}}})  # fmt: skip
        assert bad.status_code == 422 and "{nope}" in bad.json()["error"]["message"]
        r = client.post("/api/v1/support/campaigns", headers=cs, json={
            "name": "Spring 2026", "kind": "discount", "templates": TEMPLATES, "segment": {"max_rentals": 5},
            "discount_percent": "10", "discount_valid_days": 30})  # fmt: skip
        assert r.status_code == 201, r.text
        cid = r.json()["id"]
        assert len(client.get(f"/api/v1/support/campaigns/{cid}/audience", headers=cs).json()) == 4
        r = client.post(f"/api/v1/support/campaigns/{cid}/send", headers=cs)
        assert r.status_code == 200 and r.json()["recipients"] == {"queued": 2, "opted_out": 1, "no_email": 1}
        assert client.post(f"/api/v1/support/campaigns/{cid}/send", headers=cs).status_code == 409  # once

        sent = outbox.dispatch(
            lambda: connect(db_url, autocommit=True), sender=SmtpSender(url, sender="care@fleet.test")
        )
        assert (sent.sent, sent.failed) == (2, 0)
        mails = {m["To"]: m for m in inbox.messages}
        assert set(mails) == {"anna@example.com", "li.na@example.cn"}  # the opted-out customer got nothing
        assert mails["li.na@example.cn"]["Subject"] == "李娜，春季租车优惠"
        codes = {r["customer_id"]: r["discount_code"] for r in conn.execute(
            "SELECT customer_id, discount_code FROM campaign_recipients WHERE status = 'queued'")}  # fmt: skip
        assert codes[anna["id"]] in mails["anna@example.com"].get_body(("plain",)).get_content()

        # Anna's code: 10 % off the rental days of her next order, once; nobody else can use it.
        order = create_order(client, cs, customer_id=anna["id"], pickup=station["code"], pickup_at=future(24),
                             return_at=future(24 + 72))  # fmt: skip
        r = client.post("/api/v1/orders", headers=cs, json={
            "customer_id": anna["id"], "vehicle_class": "compact", "pickup_station": station["code"],
            "return_station": station["code"], "pickup_at": order["pickup_at"], "return_at": order["return_at"],
            "channel": "phone", "discount_code": codes[anna["id"]]})  # fmt: skip
        assert r.status_code == 201, r.text
        q = r.json()["quote"]
        days = sum(
            Decimal(ln["amount"]) for ln in order["quote"]["lines"] if ln["code"].startswith("rental_")
        )
        disc = next(ln for ln in q["lines"] if ln["code"] == "discount")
        assert Decimal(disc["amount"]) == -(days / 10).quantize(Decimal("0.01"))
        assert Decimal(q["net"]) == Decimal(order["quote"]["net"]) + Decimal(disc["amount"])
        assert Decimal(q["gross"]) == Decimal(q["net"]) + Decimal(q["vat"])
        again = {**r.json(), "discount_code": codes[anna["id"]]}
        body = {k: again[k] for k in ("customer_id", "vehicle_class", "pickup_station", "return_station",
                                      "pickup_at", "return_at", "channel", "discount_code")}  # fmt: skip
        used = client.post("/api/v1/orders", headers=cs, json=body)
        assert used.status_code == 409 and "already used" in used.json()["error"]["message"]
        theirs = client.post("/api/v1/orders", headers=cs, json={**body, "customer_id": li["id"],
                                                                  "discount_code": codes[anna["id"]]})  # fmt: skip
        assert theirs.status_code == 409  # used is reported before whose it is
        other = client.post("/api/v1/orders", headers=cs, json={**body, "discount_code": codes[li["id"]]})
        assert other.status_code == 422 and "another customer" in other.json()["error"]["message"]
        conn.execute("UPDATE discount_codes SET valid_until = now() - interval '1 day' WHERE code = %s",
                     (codes[li["id"]],))  # fmt: skip
        expired = client.post("/api/v1/orders", headers=cs, json={**body, "customer_id": li["id"],
                                                                   "discount_code": codes[li["id"]]})  # fmt: skip
        assert expired.status_code == 422 and "expired" in expired.json()["error"]["message"]
        assert client.post("/api/v1/orders", headers=cs, json={**body, "discount_code": "FLT-NOSUCHCODE"}
                           ).status_code == 422  # fmt: skip


def test_one_code_used_concurrently_has_exactly_one_winner(settings, conn):
    n = 6
    station = factories.station(conn)
    with api(settings) as client:
        cs = token(client, conn, "customer_service")
        cust = create_customer(client, cs, email="race@example.com")
        code = promotions.issue(conn, source="test", valid_days=10, amount=Decimal("25.00"), actor=None)[
            "code"
        ]
        body = {"customer_id": cust["id"], "vehicle_class": "compact", "pickup_station": station["code"],
                "return_station": station["code"], "pickup_at": future(30), "return_at": future(80),
                "channel": "app", "discount_code": code}  # fmt: skip
        barrier = threading.Barrier(n)

        def book(_: int) -> int:
            barrier.wait()
            return client.post("/api/v1/orders", headers=cs, json=body).status_code

        with ThreadPoolExecutor(n) as pool:
            codes = sorted(pool.map(book, range(n)))
    assert codes == [201] + [409] * (n - 1), codes
    row = conn.execute("SELECT redeemed_order_id FROM discount_codes WHERE code = %s", (code,)).fetchone()
    winners = conn.execute("SELECT id FROM orders WHERE quote->'discount'->>'code' = %s", (code,)).fetchall()
    assert [w["id"] for w in winners] == [row["redeemed_order_id"]]
