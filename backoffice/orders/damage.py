"""Damage charges: a crash alert raised during a rental (attached to the order at return) billed to the customer.

The charge is an invoice of kind `damage` (backoffice.finance: damage recoveries, outside the scope of VAT), one per
order, with a line per charged alert; the repair itself is a maintenance work order of kind `damage`.
"""

from __future__ import annotations

from decimal import Decimal

from backoffice.finance import service as finance
from backoffice.orders import pricing
from backoffice.orders.service import audit_order, get_or_raise, record
from fleetcore.db import Conn
from fleetcore.errors import Conflict, Invalid


def charge(conn: Conn, *, order_id: int, charges: list[dict], actor: dict) -> dict:
    """Bill damage found at return: each charge names a crash alert of the rental and an amount; the invoice."""
    order = get_or_raise(conn, order_id=order_id, for_update=True)
    if order["status"] not in ("returned", "completed"):
        raise Conflict(f"order {order_id} is {order['status']}; damage is charged after the return")
    attached = {d["alert_id"]: d for d in order["damage"]}
    if not charges:
        raise Invalid("charges: name at least one crash alert and its amount", details={"field": "charges"})
    lines = []
    for i, c in enumerate(charges):
        if c["alert_id"] not in attached:
            raise Invalid(
                f"charges[{i}]: alert {c['alert_id']} is not a crash alert of this rental "
                f"(attached: {sorted(attached) or 'none'})",
                details={"field": f"charges[{i}].alert_id"},
            )
        amount = Decimal(str(c["amount"]))
        desc = c.get("description") or f"damage from crash alert {c['alert_id']}"
        lines.append(pricing.line("damage", desc[:200], 1, amount))
    if any(
        i["kind"] == "damage" and i["status"] != "void"
        for i in finance.list_for_order(conn, order_id=order_id)
    ):
        raise Conflict(f"order {order_id} has a damage invoice already; void it to charge again")
    invoice = finance.create_invoice(
        conn,
        order_id=order_id,
        customer_id=order["customer_id"],
        kind="damage",
        lines=lines,
        vehicle_id=order["vehicle_id"],
        station_id=order["pickup_station_id"],
        actor=actor,
    )
    after = {"invoice": invoice["number"], "alerts": [c["alert_id"] for c in charges], "net": invoice["net"]}
    record(conn, order_id=order_id, actor=actor, action="damage_charge", before=None, after=after)
    audit_order(conn, actor=actor, action="damage_charge", order_id=order_id, before=None, after=after)
    return invoice
