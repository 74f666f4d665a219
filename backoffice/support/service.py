"""Cases: enquiries, complex questions and complaints, one model. The one owner of support_cases, case_events,
case_evidence and sla_targets.

intake (evidence attached when an order is named) → assignment → notes and progress told to the customer →
responsible party → proposal (with compensation) → the customer accepts (compensation carried out, case resolved,
follow-up scheduled) → follow-up with a satisfaction score (care.py) → closed. Resolved and closed cases can be
reopened. Every status change is an event in the case's history, and every write is audited.

Service levels: each severity has a first-response and a resolution target (sla_targets). `escalate_overdue`
(a scheduled job, with the clock passed in) escalates an overdue case to its department's supervisor.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from psycopg.types.json import Jsonb

from backoffice.auth import service as auth
from backoffice.customers import service as customers
from backoffice.hr import service as hr
from backoffice.notifications import service as notifications
from backoffice.orders import service as orders
from backoffice.support import care, compensation, evidence
from backoffice.support.models import FOLLOW_UP_AFTER, TRANSITIONS
from fleetcore.audit import audit
from fleetcore.db import Conn, one
from fleetcore.errors import Conflict, Invalid, NotFound
from fleetcore.jsonable import to_json

# The assignee's username is a read of staff_users (backoffice.auth), joined for one query per page.
_SELECT = """SELECT c.*, u.username AS assignee FROM support_cases c
             LEFT JOIN staff_users u ON u.id = c.assignee_user_id"""
OPEN_STATUSES = ("open", "in_progress", "proposed")
LEVEL_FIRST_RESPONSE, LEVEL_RESOLUTION = 1, 2
PROGRESS_SUBJECT = {"en": "Your case #{id}: {subject}", "zh-CN": "您的服务单 #{id}：{subject}"}
PROGRESS_FOOTER = {
    "en": "\n\nReply to this e-mail or call us quoting case #{id}.",
    "zh-CN": "\n\n如有疑问，请回复本邮件或来电并提供服务单号 #{id}。",
}

# ---- reading ---------------------------------------------------------------------------------------------


def get(conn: Conn, *, case_id: int, for_update: bool = False) -> dict | None:
    if (
        for_update
        and conn.execute("SELECT id FROM support_cases WHERE id = %s FOR UPDATE", (case_id,)).fetchone()
        is None
    ):
        return None
    return conn.execute(_SELECT + " WHERE c.id = %s", (case_id,)).fetchone()


def get_or_raise(conn: Conn, *, case_id: int, for_update: bool = False) -> dict:
    c = get(conn, case_id=case_id, for_update=for_update)
    if c is None:
        raise NotFound(f"no case {case_id}")
    return c


def detail(conn: Conn, *, case_id: int) -> dict:
    """The case with its evidence and history."""
    c = get_or_raise(conn, case_id=case_id)
    return {**c, "evidence": evidence.list_(conn, case_id=case_id), "events": events(conn, case_id=case_id)}


def events(conn: Conn, *, case_id: int) -> list[dict]:
    return conn.execute("SELECT * FROM case_events WHERE case_id = %s ORDER BY id", (case_id,)).fetchall()


def list_(
    conn: Conn,
    *,
    status: str | None = None,
    kind: str | None = None,
    customer_id: int | None = None,
    assignee: str | None = None,
    overdue_at: dt.datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict]:
    """Cases, newest first; `overdue_at` keeps open cases past a due time at that moment."""
    return conn.execute(
        _SELECT
        + """ WHERE (%(s)s::text IS NULL OR c.status = %(s)s) AND (%(k)s::text IS NULL OR c.kind = %(k)s)
              AND (%(c)s::bigint IS NULL OR c.customer_id = %(c)s) AND (%(a)s::text IS NULL OR u.username = %(a)s)
              AND (%(o)s::timestamptz IS NULL OR (c.status IN ('open', 'in_progress', 'proposed') AND
                   (c.resolution_due < %(o)s OR (c.first_response_at IS NULL AND c.first_response_due < %(o)s))))
            ORDER BY c.created_at DESC, c.id DESC LIMIT %(l)s OFFSET %(off)s""",
        {"s": status, "k": kind, "c": customer_id, "a": assignee, "o": overdue_at, "l": limit, "off": offset},
    ).fetchall()


def list_sla(conn: Conn) -> list[dict]:
    return conn.execute(
        "SELECT * FROM sla_targets ORDER BY array_position(ARRAY['critical','high','medium','low'], severity)"
    ).fetchall()


def set_sla(
    conn: Conn, *, severity: str, first_response_minutes: int, resolution_minutes: int, actor: dict
) -> dict:
    """Change a severity's targets (cases opened later use them)."""
    if resolution_minutes < first_response_minutes:
        raise Invalid("resolution_minutes must be at least first_response_minutes")
    before = conn.execute("SELECT * FROM sla_targets WHERE severity = %s", (severity,)).fetchone()
    if before is None:
        raise NotFound(f"no SLA target for severity {severity!r}")
    after = one(
        conn.execute(
            "UPDATE sla_targets SET first_response_minutes = %s, resolution_minutes = %s WHERE severity = %s "
            "RETURNING *",
            (first_response_minutes, resolution_minutes, severity),
        )
    )
    audit(
        conn,
        actor=actor,
        action="sla.update",
        entity="sla_targets",
        entity_id=severity,
        before=before,
        after=after,
    )
    return after


# ---- writes -------------------------------------------------------------------------------------------------


def _event(
    conn: Conn,
    case_id: int,
    actor: dict | str,
    kind: str,
    *,
    body: str = "",
    from_status: str | None = None,
    to_status: str | None = None,
    data: dict | None = None,
) -> None:
    conn.execute(
        """INSERT INTO case_events (case_id, actor, kind, from_status, to_status, body, data)
           VALUES (%s, %s, %s, %s, %s, %s, %s)""",
        (
            case_id,
            actor if isinstance(actor, str) else actor["username"],
            kind,
            from_status,
            to_status,
            body,
            Jsonb(to_json(data or {})),
        ),
    )


def _audit(
    conn: Conn, actor: dict | None, action: str, case_id: int, before: Any = None, after: Any = None
) -> None:
    audit(
        conn,
        actor=actor,
        action=f"case.{action}",
        entity="support_cases",
        entity_id=case_id,
        before=to_json(before),
        after=to_json(after),
    )


def create(conn: Conn, *, data: dict, actor: dict) -> dict:
    """Intake: SLA due times from the severity; evidence attached at once when an order is named."""
    if customers.get(conn, customer_id=data["customer_id"]) is None:
        raise Invalid(f"customer_id: no customer {data['customer_id']}", details={"field": "customer_id"})
    hr.get_department_or_invalid(conn, code=data.get("department", "customer_service"))
    vehicle_id = data.get("vehicle_id")
    if data.get("order_id") is not None:
        order = orders.get(conn, order_id=data["order_id"])
        if order is None:
            raise Invalid(f"order_id: no order {data['order_id']}", details={"field": "order_id"})
        if order["customer_id"] != data["customer_id"]:
            raise Invalid(
                f"order_id: order {data['order_id']} belongs to another customer",
                details={"field": "order_id"},
            )
        if vehicle_id is None:
            vehicle_id = order["vehicle_id"]
    row = one(
        conn.execute(
            """INSERT INTO support_cases (kind, channel, customer_id, order_id, vehicle_id, category, severity,
                       subject, request, contact_email, contact_phone, locale, department, created_by,
                       first_response_due, resolution_due)
               SELECT %(kind)s, %(channel)s, %(customer_id)s, %(order_id)s, %(vehicle_id)s, %(category)s,
                      %(severity)s, %(subject)s, %(request)s, %(contact_email)s, %(contact_phone)s, %(locale)s,
                      %(department)s, %(by)s, now() + make_interval(mins => t.first_response_minutes),
                      now() + make_interval(mins => t.resolution_minutes)
                 FROM sla_targets t WHERE t.severity = %(severity)s
            RETURNING id""",
            {
                **{
                    k: data.get(k)
                    for k in (
                        "kind",
                        "channel",
                        "customer_id",
                        "order_id",
                        "category",
                        "severity",
                        "subject",
                        "request",
                        "contact_email",
                        "contact_phone",
                    )
                },  # fmt: skip
                "vehicle_id": vehicle_id,
                "locale": data.get("locale", "en"),
                "department": data.get("department", "customer_service"),
                "by": actor["username"],
            },
        )
    )
    case_id = row["id"]
    _event(conn, case_id, actor, "status", to_status="open", body=data.get("request", ""))
    if data.get("order_id") is not None:
        found = evidence.attach(conn, case_id=case_id, order_id=data["order_id"])
        _event(
            conn,
            case_id,
            "system",
            "evidence",
            body="collected from the order",
            data={"kinds": sorted(found)},
        )
    case = get_or_raise(conn, case_id=case_id)
    _audit(
        conn, actor, "create", case_id, after={k: case[k] for k in ("kind", "severity", "order_id", "status")}
    )
    return case


def refresh_evidence(conn: Conn, *, case_id: int, actor: dict) -> dict:
    """Collect the order's evidence again (a rental still running, invoices paid since)."""
    case = get_or_raise(conn, case_id=case_id)
    if case["order_id"] is None:
        raise Conflict(f"case {case_id} names no order; there is no evidence to collect")
    found = evidence.attach(conn, case_id=case_id, order_id=case["order_id"])
    _event(conn, case_id, actor, "evidence", body="collected again", data={"kinds": sorted(found)})
    _audit(conn, actor, "evidence", case_id, after={"kinds": sorted(found)})
    return detail(conn, case_id=case_id)


def _first_response(conn: Conn, case: dict) -> None:
    if case["first_response_at"] is None:
        conn.execute("UPDATE support_cases SET first_response_at = now() WHERE id = %s", (case["id"],))


def _move(conn: Conn, case: dict, to: str, actor: dict | str, note: str = "", **extra: Any) -> None:
    sets = ", ".join(f"{k} = %({k})s" for k in extra)
    conn.execute(
        f"UPDATE support_cases SET status = %(to)s, updated_at = now(){', ' + sets if sets else ''} WHERE id = %(id)s",
        {"to": to, "id": case["id"], **extra},
    )
    _event(conn, case["id"], actor, "status", from_status=case["status"], to_status=to, body=note)


def assign(conn: Conn, *, case_id: int, assignee: str | None, department: str | None, actor: dict) -> dict:
    """Hand the case to a person and/or a department (across departments for complex questions)."""
    before = get_or_raise(conn, case_id=case_id, for_update=True)
    if before["status"] == "closed":
        raise Conflict(f"case {case_id} is closed; reopen it first")
    user_id = before["assignee_user_id"]
    if assignee is not None:
        u = auth.get(conn, username=assignee)
        if u is None or not u["active"]:
            raise Invalid(f"assignee: no active staff user {assignee!r}", details={"field": "assignee"})
        user_id = u["id"]
    dept = department or before["department"]
    hr.get_department_or_invalid(conn, code=dept)
    conn.execute(
        "UPDATE support_cases SET assignee_user_id = %s, department = %s, updated_at = now() WHERE id = %s",
        (user_id, dept, case_id),
    )
    if before["status"] == "open":
        _move(conn, before, "in_progress", actor, "assigned")
    _event(conn, case_id, actor, "assign", data={"assignee": assignee, "department": dept})
    after = get_or_raise(conn, case_id=case_id)
    _audit(conn, actor, "assign", case_id, before={"assignee": before["assignee"], "department": before["department"]},
           after={"assignee": after["assignee"], "department": after["department"]})  # fmt: skip
    return after


def add_note(conn: Conn, *, case_id: int, body: str, customer_visible: bool, actor: dict) -> dict:
    """An investigation note, or (customer_visible) progress reported to the customer by e-mail."""
    case = get_or_raise(conn, case_id=case_id, for_update=True)
    if case["status"] == "closed":
        raise Conflict(f"case {case_id} is closed; reopen it first")
    _event(conn, case_id, actor, "progress" if customer_visible else "note", body=body)
    if customer_visible:
        _first_response(conn, case)
        if case["contact_email"]:
            loc = case["locale"]
            notifications.enqueue_email(
                conn,
                recipient=case["contact_email"],
                subject=PROGRESS_SUBJECT[loc].format(id=case_id, subject=case["subject"]),
                body_text=body + PROGRESS_FOOTER[loc].format(id=case_id),
                locale=loc,
                source=f"support.case:{case_id}",
                actor=actor,
            )
    _audit(conn, actor, "progress" if customer_visible else "note", case_id)
    return detail(conn, case_id=case_id)


def set_responsibility(conn: Conn, *, case_id: int, party: str, detail_text: str, actor: dict) -> dict:
    """Who was responsible, as the investigation found (department, supplier, customer, nobody)."""
    before = get_or_raise(conn, case_id=case_id, for_update=True)
    conn.execute(
        "UPDATE support_cases SET responsible_party = %s, responsible_detail = %s, updated_at = now() WHERE id = %s",
        (party, detail_text, case_id),
    )
    _event(conn, case_id, actor, "responsibility", body=detail_text, data={"party": party})
    _audit(conn, actor, "responsibility", case_id, before={"party": before["responsible_party"]},
           after={"party": party})  # fmt: skip
    return get_or_raise(conn, case_id=case_id)


def set_status(conn: Conn, *, case_id: int, status: str, note: str, actor: dict) -> dict:
    """A status move a person makes: start work, withdraw a proposal, close, or reopen a resolved/closed case."""
    before = get_or_raise(conn, case_id=case_id, for_update=True)
    if status == "closed":
        return close(conn, case_id=case_id, note=note, actor=actor)
    if status not in TRANSITIONS.get(before["status"], ()) or status in ("proposed", "resolved"):
        raise Conflict(
            f"case {case_id} is {before['status']}; it cannot move to {status} this way"
            + (
                " (propose, then record the customer's acceptance)"
                if status in ("proposed", "resolved")
                else ""
            )
        )
    extra: dict[str, Any] = {}
    reopening = before["status"] in ("resolved", "closed")
    if reopening:
        extra = {
            "reopened": before["reopened"] + 1,
            "resolved_at": None,
            "closed_at": None,
            "customer_accepted": None,
        }
    _move(conn, before, status, actor, note, **extra)
    _audit(conn, actor, "reopen" if reopening else "status", case_id, before={"status": before["status"]},
           after={"status": status})  # fmt: skip
    return get_or_raise(conn, case_id=case_id)


def propose(conn: Conn, *, case_id: int, proposal: str, plan: dict | None, actor: dict) -> dict:
    """Put a resolution (and compensation) to the customer; the case waits for the answer."""
    case = get_or_raise(conn, case_id=case_id, for_update=True)
    if case["status"] not in ("open", "in_progress"):
        raise Conflict(f"case {case_id} is {case['status']}; only open or in-progress cases get a proposal")
    if plan and plan["kind"] == "credit_note":
        compensation.check_credit_note(
            conn, case=case, invoice_id=plan.get("invoice_id"), amount=plan["amount"]
        )
    _first_response(conn, case)
    _move(conn, case, "proposed", actor, proposal, proposal=proposal,
          compensation=Jsonb(to_json({"plan": plan})) if plan else None)  # fmt: skip
    _event(conn, case_id, actor, "proposal", body=proposal, data={"compensation": plan})
    _audit(conn, actor, "propose", case_id, after={"compensation": plan["kind"] if plan else None})
    return get_or_raise(conn, case_id=case_id)


def accept(conn: Conn, *, case_id: int, accepted: bool, note: str, actor: dict) -> dict:
    """Record the customer's answer: accepted → compensation carried out, resolved, follow-up scheduled."""
    case = get_or_raise(conn, case_id=case_id, for_update=True)
    if case["status"] != "proposed":
        raise Conflict(f"case {case_id} is {case['status']}; there is no proposal to answer")
    if not accepted:
        _move(
            conn,
            case,
            "in_progress",
            actor,
            note or "the customer declined the proposal",
            customer_accepted=False,
        )
        _audit(conn, actor, "declined", case_id)
        return get_or_raise(conn, case_id=case_id)
    plan = (case["compensation"] or {}).get("plan")
    done = None
    if plan:
        done = compensation.execute(conn, case=case, plan=plan, actor=actor)
        _event(conn, case_id, actor, "compensation", data=done)
    _move(conn, case, "resolved", actor, note or "the customer accepted the proposal", customer_accepted=True,
          resolved_at=one(conn.execute("SELECT now() AS t"))["t"],
          compensation=Jsonb(to_json({"plan": plan, "done": done})) if plan else None)  # fmt: skip
    care.schedule(
        conn,
        reason="case",
        customer_id=case["customer_id"],
        case_id=case_id,
        order_id=case["order_id"],
        due_in=FOLLOW_UP_AFTER,
        assignee_user_id=case["assignee_user_id"],
    )
    _audit(conn, actor, "resolve", case_id, after={"compensation": done})
    return get_or_raise(conn, case_id=case_id)


def close(conn: Conn, *, case_id: int, note: str, actor: dict) -> dict:
    """Resolved → closed; a complaint closes only after its follow-up visit recorded a satisfaction score."""
    case = get_or_raise(conn, case_id=case_id, for_update=True)
    if case["status"] != "resolved":
        raise Conflict(f"case {case_id} is {case['status']}; only resolved cases are closed")
    if case["kind"] == "complaint" and case["satisfaction"] is None:
        raise Conflict(
            f"complaint {case_id} needs its follow-up visit (with a satisfaction score) before closing"
        )
    _move(conn, case, "closed", actor, note, closed_at=one(conn.execute("SELECT now() AS t"))["t"])
    _audit(conn, actor, "close", case_id, before={"status": "resolved"}, after={"status": "closed"})
    return get_or_raise(conn, case_id=case_id)


# ---- service levels --------------------------------------------------------------------------------------------


def escalate_overdue(conn: Conn, *, now: dt.datetime) -> list[dict]:
    """Escalate open cases past a due time at `now` to their department's supervisor (once per level)."""
    due = conn.execute(
        """SELECT id, department, subject, severity, escalation_level,
                  CASE WHEN resolution_due < %(now)s THEN 2 ELSE 1 END AS level
             FROM support_cases
            WHERE status IN ('open', 'in_progress', 'proposed')
              AND (resolution_due < %(now)s OR (first_response_at IS NULL AND first_response_due < %(now)s))
            ORDER BY id FOR UPDATE SKIP LOCKED""",
        {"now": now},
    ).fetchall()
    done = []
    for c in due:
        if c["level"] <= c["escalation_level"]:
            continue
        what = "resolution" if c["level"] == LEVEL_RESOLUTION else "first response"
        dept = hr.get_department(conn, code=c["department"])
        supervisor = dept["supervisor_user_id"] if dept else None
        notifications.notify_staff(
            conn,
            kind="support.sla_breach",
            title=f"Case #{c['id']} is past its {what} target ({c['severity']})",
            body=c["subject"],
            user_id=supervisor,
            role=None if supervisor else "admin",
            data={"case_id": c["id"], "level": c["level"], "department": c["department"]},
        )
        conn.execute(
            "UPDATE support_cases SET escalation_level = %s, escalated_at = %s, updated_at = now() WHERE id = %s",
            (c["level"], now, c["id"]),
        )
        _event(conn, c["id"], "system", "escalation", body=f"{what} target missed",
               data={"level": c["level"], "supervisor_user_id": supervisor})  # fmt: skip
        _audit(conn, None, "escalate", c["id"], after={"level": c["level"]})
        done.append({"case_id": c["id"], "level": c["level"], "supervisor_user_id": supervisor})
    return done


def agent_kpis(conn: Conn, *, user_id: int, start: dt.datetime, end: dt.datetime) -> dict:
    """A customer-service agent's cases opened in [start, end): mean first-response and resolution minutes, the
    share that met both SLA targets (of resolved cases), mean satisfaction."""
    r = one(
        conn.execute(
            """SELECT count(*) AS cases,
                      avg(extract(epoch FROM first_response_at - created_at) / 60.0) AS first_response_minutes,
                      avg(extract(epoch FROM resolved_at - created_at) / 60.0) AS resolution_minutes,
                      count(*) FILTER (WHERE resolved_at IS NOT NULL) AS resolved,
                      count(*) FILTER (WHERE resolved_at IS NOT NULL AND resolved_at <= resolution_due
                                         AND first_response_at <= first_response_due) AS sla_met,
                      avg(satisfaction) AS satisfaction
                 FROM support_cases WHERE assignee_user_id = %s AND created_at >= %s AND created_at < %s""",
            (user_id, start, end),
        )
    )

    def rounded(v: Any) -> float | None:
        return None if v is None else round(float(v), 2)

    return {
        "cases": r["cases"],
        "mean_first_response_minutes": rounded(r["first_response_minutes"]),
        "mean_resolution_minutes": rounded(r["resolution_minutes"]),
        "sla_met_rate": round(r["sla_met"] / r["resolved"], 4) if r["resolved"] else None,
        "mean_satisfaction": rounded(r["satisfaction"]),
    }
