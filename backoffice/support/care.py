"""Relationship care: follow-up visits (after a case's resolution, after each return), satisfaction surveys (1-5 and
NPS 0-10) with feedback tags and their monthly trend, and customers' contact preferences. The one owner of
follow_ups, surveys and customer_contact_prefs."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from backoffice.customers import service as customers
from fleetcore.audit import audit
from fleetcore.db import Conn, one
from fleetcore.errors import Conflict, Invalid, NotFound

# Returns this far back are given a follow-up when the job first runs (older ones are left alone).
AFTER_RETURN_LOOKBACK = dt.timedelta(days=14)
AFTER_RETURN_DELAY = dt.timedelta(days=2)
# NPS: promoters answer 9-10, detractors 0-6 (Reichheld, "The One Number You Need to Grow", HBR 2003).
PROMOTER_MIN, DETRACTOR_MAX = 9, 6


def schedule(
    conn: Conn,
    *,
    reason: str,
    customer_id: int,
    due_in: dt.timedelta,
    case_id: int | None = None,
    order_id: int | None = None,
    assignee_user_id: int | None = None,
) -> dict:
    """A follow-up visit on the task list, due `due_in` from now."""
    return one(
        conn.execute(
            """INSERT INTO follow_ups (reason, customer_id, case_id, order_id, due_at, assignee_user_id)
               VALUES (%s, %s, %s, %s, now() + %s, %s) RETURNING *""",
            (reason, customer_id, case_id, order_id, due_in, assignee_user_id),
        )
    )


def schedule_after_returns(conn: Conn, *, now: dt.datetime) -> int:
    """A follow-up for every rental returned in the look-back window that has none yet (the scheduled job).

    Reads orders.returned_at in one query (a cross-domain read listed in docs/backoffice-fleet.md): a service call
    per order would be the only alternative.
    """
    rows = conn.execute(
        """INSERT INTO follow_ups (reason, customer_id, order_id, due_at)
           SELECT 'after_return', o.customer_id, o.id, o.returned_at + %(delay)s
             FROM orders o
            WHERE o.returned_at IS NOT NULL AND o.returned_at >= %(since)s AND o.returned_at < %(now)s
           ON CONFLICT (order_id) WHERE reason = 'after_return' DO NOTHING
           RETURNING id""",
        {"delay": AFTER_RETURN_DELAY, "since": now - AFTER_RETURN_LOOKBACK, "now": now},
    ).fetchall()
    if rows:
        audit(
            conn, actor=None, action="follow_up.schedule", entity="follow_ups", after={"created": len(rows)}
        )
    return len(rows)


def list_follow_ups(
    conn: Conn, *, status: str | None = "pending", due_before: dt.datetime | None = None, limit: int = 100
) -> list[dict]:
    """The task list: follow-ups by due time."""
    return conn.execute(
        """SELECT * FROM follow_ups WHERE (%(s)s::text IS NULL OR status = %(s)s)
              AND (%(d)s::timestamptz IS NULL OR due_at < %(d)s) ORDER BY due_at, id LIMIT %(l)s""",
        {"s": status, "d": due_before, "l": limit},
    ).fetchall()


def get_follow_up_or_raise(conn: Conn, *, follow_up_id: int) -> dict:
    row = conn.execute("SELECT * FROM follow_ups WHERE id = %s", (follow_up_id,)).fetchone()
    if row is None:
        raise NotFound(f"no follow-up {follow_up_id}")
    return row


def complete_follow_up(conn: Conn, *, follow_up_id: int, answer: dict, actor: dict) -> dict:
    """The visit happened: the customer's scores become a survey answer; a case's follow-up sets its satisfaction."""
    f = conn.execute("SELECT * FROM follow_ups WHERE id = %s FOR UPDATE", (follow_up_id,)).fetchone()
    if f is None:
        raise NotFound(f"no follow-up {follow_up_id}")
    if f["status"] != "pending":
        raise Conflict(f"follow-up {follow_up_id} is already {f['status']}")
    if f["case_id"] is not None and answer.get("satisfaction") is None:
        raise Invalid("satisfaction: a case's follow-up records the customer's satisfaction (1-5)")
    conn.execute(
        "UPDATE follow_ups SET status = 'done', done_at = now(), done_by = %s, note = %s WHERE id = %s",
        (actor["username"], answer.get("note", ""), follow_up_id),
    )
    survey = None
    if answer.get("satisfaction") is not None or answer.get("nps") is not None:
        survey = record_survey(
            conn,
            data={
                **answer,
                "customer_id": f["customer_id"],
                "case_id": f["case_id"],
                "order_id": f["order_id"],
            },
            follow_up_id=follow_up_id,
            actor=actor,
        )
    if f["case_id"] is not None:
        conn.execute(
            "UPDATE support_cases SET satisfaction = %s, updated_at = now() WHERE id = %s",
            (answer["satisfaction"], f["case_id"]),
        )
        conn.execute(
            """INSERT INTO case_events (case_id, actor, kind, body, data)
               VALUES (%s, %s, 'note', 'follow-up visit done', jsonb_build_object('satisfaction', %s::int))""",
            (f["case_id"], actor["username"], answer["satisfaction"]),
        )
    audit(conn, actor=actor, action="follow_up.done", entity="follow_ups", entity_id=follow_up_id,
          after={"survey_id": survey["id"] if survey else None})  # fmt: skip
    return get_follow_up_or_raise(conn, follow_up_id=follow_up_id)


def _tags(tags: list[str]) -> list[str]:
    clean = sorted({t.strip().lower() for t in tags if t.strip()})
    if any(len(t) > 40 for t in clean):
        raise Invalid("tags: a feedback tag has at most 40 characters")
    return clean


def record_survey(conn: Conn, *, data: dict, actor: dict, follow_up_id: int | None = None) -> dict:
    """One survey answer (satisfaction 1-5 and/or NPS 0-10, tags)."""
    if customers.get(conn, customer_id=data["customer_id"]) is None:
        raise Invalid(f"customer_id: no customer {data['customer_id']}", details={"field": "customer_id"})
    row = one(
        conn.execute(
            """INSERT INTO surveys (customer_id, case_id, order_id, follow_up_id, satisfaction, nps, comment, tags)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING *""",
            (
                data["customer_id"],
                data.get("case_id"),
                data.get("order_id"),
                follow_up_id,
                data.get("satisfaction"),
                data.get("nps"),
                data.get("comment", ""),
                _tags(data.get("tags", [])),
            ),
        )
    )
    audit(conn, actor=actor, action="survey.create", entity="surveys", entity_id=row["id"],
          after={"satisfaction": row["satisfaction"], "nps": row["nps"], "tags": row["tags"]})  # fmt: skip
    return row


def nps(scores: list[int]) -> float | None:
    """Net Promoter Score: % promoters minus % detractors, or None without answers."""
    if not scores:
        return None
    promoters = sum(1 for s in scores if s >= PROMOTER_MIN)
    detractors = sum(1 for s in scores if s <= DETRACTOR_MAX)
    return round(100.0 * (promoters - detractors) / len(scores), 1)


def trend(conn: Conn, *, start: dt.datetime, end: dt.datetime) -> list[dict]:
    """Per calendar month (UTC) in [start, end): answers, mean satisfaction, NPS and how often each tag came up."""
    if end <= start:
        raise Invalid("'to' must be after 'from'")
    rows = conn.execute(
        """SELECT (date_trunc('month', answered_at AT TIME ZONE 'UTC'))::date AS month, satisfaction, nps, tags
             FROM surveys WHERE answered_at >= %s AND answered_at < %s ORDER BY answered_at""",
        (start, end),
    ).fetchall()
    months: dict[dt.date, list[dict]] = {}
    for r in rows:
        months.setdefault(r["month"], []).append(r)
    out = []
    for month, answers in sorted(months.items()):
        sat = [a["satisfaction"] for a in answers if a["satisfaction"] is not None]
        tags: Counter[str] = Counter(t for a in answers for t in a["tags"])
        out.append(
            {
                "month": month,
                "answers": len(answers),
                "satisfaction_avg": round(sum(sat) / len(sat), 2) if sat else None,
                "nps": nps([a["nps"] for a in answers if a["nps"] is not None]),
                "tags": dict(tags.most_common()),
            }
        )
    return out


# ---- contact preferences ---------------------------------------------------------------------------------------


def get_prefs(conn: Conn, *, customer_id: int) -> dict:
    """A customer's preferences (defaults when never set)."""
    if customers.get(conn, customer_id=customer_id) is None:
        raise NotFound(f"no customer {customer_id}")
    row = conn.execute(
        "SELECT * FROM customer_contact_prefs WHERE customer_id = %s", (customer_id,)
    ).fetchone()
    return row or {"customer_id": customer_id, "marketing_opt_out": False, "locale": "en",
                   "updated_at": one(conn.execute("SELECT now() AS t"))["t"]}  # fmt: skip


def set_prefs(conn: Conn, *, customer_id: int, marketing_opt_out: bool, locale: str, actor: dict) -> dict:
    before = get_prefs(conn, customer_id=customer_id)
    row = one(
        conn.execute(
            """INSERT INTO customer_contact_prefs (customer_id, marketing_opt_out, locale) VALUES (%s, %s, %s)
               ON CONFLICT (customer_id) DO UPDATE SET marketing_opt_out = EXCLUDED.marketing_opt_out,
                      locale = EXCLUDED.locale, updated_at = now()
               RETURNING *""",
            (customer_id, marketing_opt_out, locale),
        )
    )
    audit(conn, actor=actor, action="contact_prefs.update", entity="customer_contact_prefs", entity_id=customer_id,
          before={k: before[k] for k in ("marketing_opt_out", "locale")},
          after={k: row[k] for k in ("marketing_opt_out", "locale")})  # fmt: skip
    return row
