"""Office supplies: the one owner of supply_items, stock_movements, purchase plans, requisitions and stock counts.

Stock changes only through movements written here (a purchase received, an issue against an approved requisition, a
count's correction); the stock column never goes negative (CHECK). When an issue takes an item to its reorder point
or below, admins get a notice (backoffice.notifications).
"""

from __future__ import annotations

from backoffice.hr import service as hr
from backoffice.notifications import service as notifications
from fleetcore.audit import audit
from fleetcore.db import Conn, one
from fleetcore.errors import Conflict, Invalid, NotFound


def list_items(conn: Conn, *, below_reorder: bool = False) -> list[dict]:
    return conn.execute(
        "SELECT * FROM supply_items WHERE active AND (NOT %s OR stock <= reorder_point) ORDER BY sku",
        (below_reorder,),
    ).fetchall()


def get_item_or_raise(conn: Conn, *, item_id: int, for_update: bool = False) -> dict:
    row = conn.execute(
        "SELECT * FROM supply_items WHERE id = %s" + (" FOR UPDATE" if for_update else ""), (item_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"no supply item {item_id}")
    return row


def create_item(conn: Conn, *, data: dict, actor: dict) -> dict:
    if conn.execute("SELECT 1 FROM supply_items WHERE sku = %s", (data["sku"],)).fetchone():
        raise Conflict(f"supply item {data['sku']} already exists")
    row = one(
        conn.execute(
            """INSERT INTO supply_items (sku, name, unit, reorder_point, reorder_qty, unit_cost)
               VALUES (%(sku)s, %(name)s, %(unit)s, %(reorder_point)s, %(reorder_qty)s, %(unit_cost)s) RETURNING *""",
            data,
        )
    )
    audit(
        conn, actor=actor, action="supply_item.create", entity="supply_items", entity_id=row["id"], after=row
    )
    return row


def _move(conn: Conn, *, item_id: int, qty: int, reason: str, ref: str, actor: dict) -> dict:
    item = get_item_or_raise(conn, item_id=item_id, for_update=True)
    if item["stock"] + qty < 0:
        raise Conflict(f"only {item['stock']} {item['unit']} of {item['sku']} in stock, {-qty} asked",
                       details={"item_id": item_id, "stock": item["stock"]})  # fmt: skip
    conn.execute(
        "INSERT INTO stock_movements (item_id, qty, reason, ref, actor) VALUES (%s, %s, %s, %s, %s)",
        (item_id, qty, reason, ref, actor["username"]),
    )
    return one(
        conn.execute("UPDATE supply_items SET stock = stock + %s WHERE id = %s RETURNING *", (qty, item_id))
    )


def _check_lines(conn: Conn, lines: list[dict]) -> None:
    ids = [ln["item_id"] for ln in lines]
    if len(set(ids)) != len(ids):
        raise Invalid("lines: each item appears once")
    for ln in lines:
        get_item_or_raise(conn, item_id=ln["item_id"])


# ---- purchase plans ------------------------------------------------------------------------------------------------


def create_plan(conn: Conn, *, period: str, lines: list[dict], note: str, actor: dict) -> dict:
    _check_lines(conn, lines)
    plan = one(conn.execute("INSERT INTO purchase_plans (period, note, created_by) VALUES (%s, %s, %s) RETURNING id",
                            (period, note, actor["username"])))  # fmt: skip
    for ln in lines:
        conn.execute(
            """INSERT INTO purchase_plan_lines (plan_id, item_id, qty, unit_cost)
               SELECT %s, id, %s, coalesce(%s, unit_cost) FROM supply_items WHERE id = %s""",
            (plan["id"], ln["qty"], ln.get("unit_cost"), ln["item_id"]),
        )
    audit(conn, actor=actor, action="purchase_plan.create", entity="purchase_plans", entity_id=plan["id"],
          after={"period": period, "lines": len(lines)})  # fmt: skip
    return get_plan_or_raise(conn, plan_id=plan["id"])


def suggest_plan_lines(conn: Conn) -> list[dict]:
    """What to buy: every item at or below its reorder point, its reorder quantity."""
    return [{"item_id": i["id"], "qty": i["reorder_qty"], "unit_cost": i["unit_cost"]}
            for i in list_items(conn, below_reorder=True) if i["reorder_qty"] > 0]  # fmt: skip


def get_plan_or_raise(conn: Conn, *, plan_id: int) -> dict:
    p = conn.execute("SELECT * FROM purchase_plans WHERE id = %s", (plan_id,)).fetchone()
    if p is None:
        raise NotFound(f"no purchase plan {plan_id}")
    p["lines"] = conn.execute(
        "SELECT item_id, qty, unit_cost, qty * unit_cost AS amount FROM purchase_plan_lines WHERE plan_id = %s "
        "ORDER BY item_id",
        (plan_id,),
    ).fetchall()
    p["total"] = sum((ln["amount"] for ln in p["lines"]), 0)
    return p


def advance_plan(conn: Conn, *, plan_id: int, to: str, actor: dict) -> dict:
    """draft → approved → received (stock comes in), or cancelled before receipt."""
    before = get_plan_or_raise(conn, plan_id=plan_id)
    allowed = {"draft": ("approved", "cancelled"), "approved": ("received", "cancelled")}
    if to not in allowed.get(before["status"], ()):
        raise Conflict(f"purchase plan {plan_id} is {before['status']}; it cannot become {to}")
    if to == "received":
        for ln in before["lines"]:
            _move(
                conn,
                item_id=ln["item_id"],
                qty=ln["qty"],
                reason="purchase",
                ref=f"plan:{plan_id}",
                actor=actor,
            )
    conn.execute(
        """UPDATE purchase_plans SET status = %s, approved_by = CASE WHEN %s = 'approved' THEN %s ELSE approved_by END,
                  received_at = CASE WHEN %s = 'received' THEN now() END WHERE id = %s""",
        (to, to, actor["username"], to, plan_id),
    )
    audit(conn, actor=actor, action=f"purchase_plan.{to}", entity="purchase_plans", entity_id=plan_id,
          before={"status": before["status"]}, after={"status": to})  # fmt: skip
    return get_plan_or_raise(conn, plan_id=plan_id)


# ---- requisitions ----------------------------------------------------------------------------------------------------


def get_requisition_or_raise(conn: Conn, *, requisition_id: int, for_update: bool = False) -> dict:
    r = conn.execute(
        "SELECT * FROM supply_requisitions WHERE id = %s" + (" FOR UPDATE" if for_update else ""),
        (requisition_id,),
    ).fetchone()
    if r is None:
        raise NotFound(f"no supply requisition {requisition_id}")
    r["lines"] = conn.execute(
        "SELECT item_id, qty FROM supply_requisition_lines WHERE requisition_id = %s ORDER BY item_id",
        (requisition_id,),
    ).fetchall()
    return r


def request(conn: Conn, *, lines: list[dict], purpose: str, actor: dict) -> dict:
    """Any staff member asks for supplies for their department."""
    _check_lines(conn, lines)
    hr.get_department_or_invalid(conn, code=actor["department"])
    r = one(conn.execute(
        "INSERT INTO supply_requisitions (requested_by, department, purpose) VALUES (%s, %s, %s) RETURNING id",
        (actor["username"], actor["department"], purpose)))  # fmt: skip
    for ln in lines:
        conn.execute("INSERT INTO supply_requisition_lines (requisition_id, item_id, qty) VALUES (%s, %s, %s)",
                     (r["id"], ln["item_id"], ln["qty"]))  # fmt: skip
    audit(conn, actor=actor, action="supply_requisition.create", entity="supply_requisitions", entity_id=r["id"],
          after={"lines": len(lines)})  # fmt: skip
    return get_requisition_or_raise(conn, requisition_id=r["id"])


def decide(conn: Conn, *, requisition_id: int, approve: bool, actor: dict) -> dict:
    r = get_requisition_or_raise(conn, requisition_id=requisition_id, for_update=True)
    if r["status"] != "pending":
        raise Conflict(f"requisition {requisition_id} is {r['status']}")
    if r["requested_by"] == actor["username"]:
        raise Conflict("a requisition is approved by someone other than who asked for it")
    to = "approved" if approve else "rejected"
    conn.execute("UPDATE supply_requisitions SET status = %s, decided_by = %s, updated_at = now() WHERE id = %s",
                 (to, actor["username"], requisition_id))  # fmt: skip
    audit(conn, actor=actor, action=f"supply_requisition.{to}", entity="supply_requisitions",
          entity_id=requisition_id)  # fmt: skip
    return get_requisition_or_raise(conn, requisition_id=requisition_id)


def issue(conn: Conn, *, requisition_id: int, actor: dict) -> dict:
    """Hand out an approved requisition; items reaching their reorder point notify the admins."""
    r = get_requisition_or_raise(conn, requisition_id=requisition_id, for_update=True)
    if r["status"] != "approved":
        raise Conflict(f"requisition {requisition_id} is {r['status']}; only approved ones are issued")
    for ln in r["lines"]:
        item = _move(conn, item_id=ln["item_id"], qty=-ln["qty"], reason="issue", ref=f"requisition:{requisition_id}",
                     actor=actor)  # fmt: skip
        if item["stock"] <= item["reorder_point"]:
            notifications.notify_staff(
                conn, kind="admin.reorder_point", role="admin",
                title=f"{item['sku']} {item['name']}: {item['stock']} {item['unit']} left (reorder point "
                      f"{item['reorder_point']})",
                data={"item_id": item["id"], "stock": item["stock"], "reorder_qty": item["reorder_qty"]},
            )  # fmt: skip
    conn.execute("UPDATE supply_requisitions SET status = 'issued', issued_by = %s, updated_at = now() WHERE id = %s",
                 (actor["username"], requisition_id))  # fmt: skip
    audit(
        conn,
        actor=actor,
        action="supply_requisition.issue",
        entity="supply_requisitions",
        entity_id=requisition_id,
    )
    return get_requisition_or_raise(conn, requisition_id=requisition_id)


def list_requisitions(conn: Conn, *, status: str | None = None) -> list[dict]:
    ids = conn.execute(
        "SELECT id FROM supply_requisitions WHERE (%(s)s::text IS NULL OR status = %(s)s) ORDER BY id DESC LIMIT 200",
        {"s": status},
    ).fetchall()
    return [get_requisition_or_raise(conn, requisition_id=r["id"]) for r in ids]


# ---- stock counts ------------------------------------------------------------------------------------------------------


def count(conn: Conn, *, lines: list[dict], note: str, actor: dict) -> dict:
    """A periodic count: per item the expected stock, the counted one and the variance; stock set to the count."""
    _check_lines(conn, [{"item_id": ln["item_id"]} for ln in lines])
    c = one(conn.execute("INSERT INTO stock_counts (counted_by, note) VALUES (%s, %s) RETURNING id",
                         (actor["username"], note)))  # fmt: skip
    for ln in lines:
        item = get_item_or_raise(conn, item_id=ln["item_id"], for_update=True)
        conn.execute("INSERT INTO stock_count_lines (count_id, item_id, expected, counted) VALUES (%s, %s, %s, %s)",
                     (c["id"], item["id"], item["stock"], ln["counted"]))  # fmt: skip
        if ln["counted"] != item["stock"]:
            _move(conn, item_id=item["id"], qty=ln["counted"] - item["stock"], reason="count", ref=f"count:{c['id']}",
                  actor=actor)  # fmt: skip
    audit(conn, actor=actor, action="stock_count.create", entity="stock_counts", entity_id=c["id"],
          after={"lines": len(lines)})  # fmt: skip
    return get_count_or_raise(conn, count_id=c["id"])


def get_count_or_raise(conn: Conn, *, count_id: int) -> dict:
    c = conn.execute("SELECT * FROM stock_counts WHERE id = %s", (count_id,)).fetchone()
    if c is None:
        raise NotFound(f"no stock count {count_id}")
    c["lines"] = conn.execute(
        """SELECT l.item_id, i.sku, l.expected, l.counted, l.variance, l.variance * i.unit_cost AS variance_value
             FROM stock_count_lines l JOIN supply_items i ON i.id = l.item_id WHERE l.count_id = %s ORDER BY i.sku""",
        (count_id,),
    ).fetchall()
    return c
