"""Performance reviews: the one owner of reviews.

The KPIs are read from what the system recorded, never typed in:
- dispatchers: alerts acknowledged and resolved, mean minutes from opening (monitor.service.handling_times);
- customer service: cases, mean first-response and resolution minutes, SLA met, satisfaction
  (backoffice.support.service.agent_kpis) and the completion rate of the orders they took in
  (backoffice.orders.service.staff_completion);
- technicians: work orders closed and the rework rate (backoffice.maintenance.service.technician_kpis).
A review period is whole days [period_start, period_end] in UTC. Then the manager's rating and an outcome (pay change,
promotion, bonus) that an admin approves; an approved pay change or promotion changes the employee's pay, a bonus is
paid by the payroll of the month it was approved in.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from psycopg.types.json import Jsonb

from backoffice.hr import employees
from backoffice.maintenance import service as maintenance
from backoffice.orders import service as orders
from backoffice.support import service as support
from fleetcore.audit import audit
from fleetcore.crypto import FieldCipher
from fleetcore.db import Conn, one
from fleetcore.errors import Conflict, Forbidden, Invalid, NotFound
from fleetcore.jsonable import to_json
from monitor import service as alerts


def outcome_context(review_id: int) -> str:
    return f"reviews.outcome_enc:{review_id}"


MAX_PERIOD_DAYS = 400


def period_bounds(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start 00:00, end+1 00:00) in UTC."""
    return (dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC),
            dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC))  # fmt: skip


def compute_kpis(conn: Conn, *, employee: dict, start: dt.date, end: dt.date) -> dict:
    """The KPIs of the employee's role over the period, from the system's records."""
    f, t = period_bounds(start, end)
    role = employee["role"]
    if role == "dispatcher":
        return alerts.handling_times(conn, username=employee["username"], start=f, end=t)
    if role == "customer_service":
        return {**support.agent_kpis(conn, user_id=employee["user_id"], start=f, end=t),
                **orders.staff_completion(conn, username=employee["username"], start=f, end=t)}  # fmt: skip
    if role == "technician":
        return maintenance.technician_kpis(conn, username=employee["username"], start=f, end=t)
    return {}


def present(row: dict, *, viewer: dict, cipher: FieldCipher) -> dict:
    """A review as the viewer may see it: the outcome's amount for hr and admin only."""
    out = {k: v for k, v in row.items() if k != "outcome_enc"}
    out["outcome_amount"] = None
    if row["outcome_enc"] is not None and employees.sees_personal(viewer):
        out["outcome_amount"] = Decimal(
            cipher.decrypt(row["outcome_enc"], context=outcome_context(row["id"])) or 0
        )
    return out


def get_or_raise(conn: Conn, *, review_id: int, for_update: bool = False) -> dict:
    r = conn.execute(
        "SELECT * FROM reviews WHERE id = %s" + (" FOR UPDATE" if for_update else ""), (review_id,)
    ).fetchone()
    if r is None:
        raise NotFound(f"no review {review_id}")
    return r


def list_(conn: Conn, *, employee_id: int | None = None, status: str | None = None) -> list[dict]:
    return conn.execute(
        """SELECT * FROM reviews WHERE (%(e)s::bigint IS NULL OR employee_id = %(e)s)
              AND (%(s)s::text IS NULL OR status = %(s)s) ORDER BY period_end DESC, id DESC LIMIT 500""",
        {"e": employee_id, "s": status},
    ).fetchall()


def create(conn: Conn, *, employee_id: int, start: dt.date, end: dt.date, actor: dict) -> dict:
    """Open a review for a period with its KPIs computed now."""
    if end < start or (end - start).days > MAX_PERIOD_DAYS:
        raise Invalid(f"the period must run forwards and last at most {MAX_PERIOD_DAYS} days")
    emp = employees.get_or_raise(conn, employee_id=employee_id)
    if conn.execute(
        "SELECT 1 FROM reviews WHERE employee_id = %s AND period_start = %s AND period_end = %s",
        (employee_id, start, end),
    ).fetchone():
        raise Conflict(f"employee {employee_id} already has a review for {start} to {end}")
    kpis = compute_kpis(conn, employee=emp, start=start, end=end)
    row = one(
        conn.execute(
            """INSERT INTO reviews (employee_id, period_start, period_end, role, kpis, created_by)
               VALUES (%s, %s, %s, %s, %s, %s) RETURNING *""",
            (employee_id, start, end, emp["role"], Jsonb(to_json(kpis)), actor["username"]),
        )
    )
    audit(conn, actor=actor, action="review.create", entity="reviews", entity_id=row["id"],
          after={"employee_id": employee_id, "kpis": to_json(kpis)})  # fmt: skip
    return row


def refresh(conn: Conn, *, review_id: int, actor: dict) -> dict:
    """Compute the KPIs again (while the review is a draft: late-closed cases, alerts resolved since)."""
    r = get_or_raise(conn, review_id=review_id, for_update=True)
    if r["status"] != "draft":
        raise Conflict(f"review {review_id} is {r['status']}; its KPIs are frozen")
    emp = employees.get_or_raise(conn, employee_id=r["employee_id"])
    kpis = compute_kpis(conn, employee=emp, start=r["period_start"], end=r["period_end"])
    after = one(conn.execute("UPDATE reviews SET kpis = %s WHERE id = %s RETURNING *",
                             (Jsonb(to_json(kpis)), review_id)))  # fmt: skip
    audit(
        conn, actor=actor, action="review.refresh", entity="reviews", entity_id=review_id, after=to_json(kpis)
    )
    return after


def rate(conn: Conn, *, review_id: int, data: dict, actor: dict, cipher: FieldCipher) -> dict:
    """The manager's rating and proposed outcome (pay change and promotion: the new monthly base; bonus: the amount)."""
    r = get_or_raise(conn, review_id=review_id, for_update=True)
    if r["status"] == "approved":
        raise Conflict(f"review {review_id} is approved and final")
    outcome, amount = data["outcome"], data.get("amount")
    if outcome in ("pay_change", "bonus") and amount is None:
        raise Invalid(f"amount: a {outcome} names its amount")
    if outcome == "promotion" and not data.get("note"):
        raise Invalid("note: a promotion names the new position")
    enc = cipher.encrypt(str(amount), context=outcome_context(review_id)) if amount is not None else None
    after = one(
        conn.execute(
            """UPDATE reviews SET manager_rating = %s, manager_comment = %s, outcome = %s, outcome_enc = %s,
                      outcome_note = %s, status = 'rated' WHERE id = %s RETURNING *""",
            (data["rating"], data.get("comment", ""), outcome, enc, data.get("note", ""), review_id),
        )
    )
    audit(conn, actor=actor, action="review.rate", entity="reviews", entity_id=review_id,
          after={"rating": data["rating"], "outcome": outcome})  # fmt: skip
    return after


def approve(conn: Conn, *, review_id: int, actor: dict, cipher: FieldCipher) -> dict:
    """Admin approval: a pay change or promotion takes effect on the employee; a bonus waits for payroll."""
    if actor.get("role") != "admin":
        raise Forbidden("only an admin approves review outcomes")
    r = get_or_raise(conn, review_id=review_id, for_update=True)
    if r["status"] != "rated":
        raise Conflict(f"review {review_id} is {r['status']}; only rated reviews are approved")
    plain = cipher.decrypt(r["outcome_enc"], context=outcome_context(review_id))
    amount = Decimal(plain) if plain is not None else None
    if r["outcome"] == "promotion":
        employees.update(
            conn, employee_id=r["employee_id"], changes={"position": r["outcome_note"]}, actor=actor
        )
    if r["outcome"] in ("pay_change", "promotion") and amount is not None:
        employees.set_pay(
            conn, employee_id=r["employee_id"], base=amount, allowance=None, actor=actor, cipher=cipher
        )
    after = one(
        conn.execute(
            "UPDATE reviews SET status = 'approved', approved_by = %s, approved_at = now() WHERE id = %s RETURNING *",
            (actor["username"], review_id),
        )
    )
    audit(conn, actor=actor, action="review.approve", entity="reviews", entity_id=review_id,
          after={"outcome": r["outcome"]})  # fmt: skip
    return after


def bonuses(
    conn: Conn, *, employee_id: int, start: dt.datetime, end: dt.datetime, cipher: FieldCipher
) -> Decimal:
    """Bonuses approved for the employee in [start, end) (payroll pays them with that month)."""
    rows = conn.execute(
        """SELECT id, outcome_enc FROM reviews WHERE employee_id = %s AND status = 'approved' AND outcome = 'bonus'
              AND approved_at >= %s AND approved_at < %s""",
        (employee_id, start, end),
    ).fetchall()
    return sum(
        (Decimal(cipher.decrypt(r["outcome_enc"], context=outcome_context(r["id"])) or 0) for r in rows),
        Decimal(0),
    )


def rotate_keys(conn: Conn, *, cipher: FieldCipher, actor: dict | None) -> int:
    """Re-encrypt review outcomes written under an older field key; returns how many."""
    n = 0
    for r in conn.execute(
        "SELECT id, outcome_enc FROM reviews WHERE outcome_enc IS NOT NULL FOR UPDATE"
    ).fetchall():
        if cipher.needs_rotation(r["outcome_enc"]):
            ctx = outcome_context(r["id"])
            conn.execute(
                "UPDATE reviews SET outcome_enc = %s WHERE id = %s",
                (cipher.encrypt(cipher.decrypt(r["outcome_enc"], context=ctx), context=ctx), r["id"]),
            )
            n += 1
    audit(conn, actor=actor, action="review.rotate_keys", entity="reviews", after={"rows": n})
    return n
