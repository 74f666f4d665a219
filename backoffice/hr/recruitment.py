"""Recruitment: requisition → candidates → interview → written test → background check → offer → hire. The one
owner of job_requisitions and candidates. The hire creates the staff user through backoffice.auth (via HR's
policy in service.create) and the employee record, in one transaction: the new user can log in at once."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from backoffice.auth.models import ROLES
from backoffice.hr import employees
from backoffice.hr import service as staff
from fleetcore.audit import audit
from fleetcore.crypto import FieldCipher
from fleetcore.db import Conn, one
from fleetcore.errors import Conflict, Invalid, NotFound

# A candidate moves on with at least this score (out of 100) in the interview and in the written test.
PASS_SCORE = Decimal(60)
# Each step and the stage a candidate must be in for it.
STEP_FROM = {"interview": "applied", "written_test": "interviewed", "background_check": "tested",
             "offer": "checked", "hire": "offered"}  # fmt: skip


def offer_context(candidate_id: int) -> str:
    return f"candidates.offer_enc:{candidate_id}"


def create_requisition(conn: Conn, *, data: dict, actor: dict) -> dict:
    staff.get_department_or_invalid(conn, code=data["department"])
    if data["role"] not in ROLES:
        raise Invalid(f"role: unknown role {data['role']!r}")
    row = one(
        conn.execute(
            """INSERT INTO job_requisitions (department, position, role, headcount, reason, created_by)
               VALUES (%s, %s, %s, %s, %s, %s) RETURNING *""",
            (data["department"], data["position"], data["role"], data["headcount"], data.get("reason", ""),
             actor["username"]),
        )
    )  # fmt: skip
    audit(
        conn,
        actor=actor,
        action="requisition.create",
        entity="job_requisitions",
        entity_id=row["id"],
        after=row,
    )
    return row


def get_requisition_or_raise(conn: Conn, *, requisition_id: int) -> dict:
    r = conn.execute("SELECT * FROM job_requisitions WHERE id = %s", (requisition_id,)).fetchone()
    if r is None:
        raise NotFound(f"no requisition {requisition_id}")
    return r


def list_requisitions(conn: Conn, *, status: str | None = None) -> list[dict]:
    return conn.execute(
        "SELECT * FROM job_requisitions WHERE (%(s)s::text IS NULL OR status = %(s)s) ORDER BY id DESC",
        {"s": status},
    ).fetchall()


_CANDIDATE_COLUMNS = (
    "id, requisition_id, full_name, email, phone, stage, interview_score, written_test_score, background_check, "
    "offer_start_date, employee_id, notes, created_at, updated_at"
)


def get_candidate_or_raise(conn: Conn, *, candidate_id: int, for_update: bool = False) -> dict:
    c = conn.execute(
        f"SELECT {_CANDIDATE_COLUMNS} FROM candidates WHERE id = %s" + (" FOR UPDATE" if for_update else ""),
        (candidate_id,),
    ).fetchone()
    if c is None:
        raise NotFound(f"no candidate {candidate_id}")
    return c


def list_candidates(conn: Conn, *, requisition_id: int) -> list[dict]:
    get_requisition_or_raise(conn, requisition_id=requisition_id)
    return conn.execute(
        f"SELECT {_CANDIDATE_COLUMNS} FROM candidates WHERE requisition_id = %s ORDER BY id",
        (requisition_id,),
    ).fetchall()


def add_candidate(conn: Conn, *, requisition_id: int, data: dict, actor: dict) -> dict:
    req = get_requisition_or_raise(conn, requisition_id=requisition_id)
    if req["status"] != "open":
        raise Conflict(f"requisition {requisition_id} is {req['status']}")
    row = one(
        conn.execute(
            "INSERT INTO candidates (requisition_id, full_name, email, phone, notes) VALUES (%s, %s, %s, %s, %s) "
            "RETURNING id",
            (requisition_id, data["full_name"], data["email"], data.get("phone"), data.get("notes", "")),
        )
    )
    audit(conn, actor=actor, action="candidate.create", entity="candidates", entity_id=row["id"],
          after={"requisition_id": requisition_id})  # fmt: skip
    return get_candidate_or_raise(conn, candidate_id=row["id"])


def _step(conn: Conn, candidate_id: int, step: str) -> dict:
    c = get_candidate_or_raise(conn, candidate_id=candidate_id, for_update=True)
    if c["stage"] != STEP_FROM[step]:
        raise Conflict(f"candidate {candidate_id} is {c['stage']}; {step} comes after {STEP_FROM[step]}")
    return c


def _set(conn: Conn, candidate_id: int, actor: dict, action: str, stage: str, **cols: object) -> dict:
    sets = "".join(f", {k} = %({k})s" for k in cols)
    conn.execute(
        f"UPDATE candidates SET stage = %(stage)s, updated_at = now(){sets} WHERE id = %(id)s",
        {"stage": stage, "id": candidate_id, **cols},
    )
    audit(conn, actor=actor, action=f"candidate.{action}", entity="candidates", entity_id=candidate_id,
          after={"stage": stage, **{k: v for k, v in cols.items() if k != "offer_enc"}})  # fmt: skip
    return get_candidate_or_raise(conn, candidate_id=candidate_id)


def score(conn: Conn, *, candidate_id: int, step: str, value: Decimal, actor: dict) -> dict:
    """Interview or written-test score; below PASS_SCORE the candidate is rejected."""
    _step(conn, candidate_id, step)
    col = "interview_score" if step == "interview" else "written_test_score"
    passed = value >= PASS_SCORE
    stage = ("interviewed" if step == "interview" else "tested") if passed else "rejected"
    return _set(conn, candidate_id, actor, step, stage, **{col: value})


def background_check(conn: Conn, *, candidate_id: int, result: str, actor: dict) -> dict:
    _step(conn, candidate_id, "background_check")
    return _set(conn, candidate_id, actor, "background_check", "checked" if result == "clear" else "rejected",
                background_check=result)  # fmt: skip


def offer(
    conn: Conn, *, candidate_id: int, base_salary: Decimal, allowance: Decimal, start_date: dt.date, actor: dict,
    cipher: FieldCipher,
) -> dict:  # fmt: skip
    _step(conn, candidate_id, "offer")
    enc = cipher.encrypt(
        json.dumps({"base": str(base_salary), "allowance": str(allowance)}),
        context=offer_context(candidate_id),
    )
    return _set(conn, candidate_id, actor, "offer", "offered", offer_enc=enc, offer_start_date=start_date)


def reject(conn: Conn, *, candidate_id: int, withdrawn: bool, actor: dict) -> dict:
    c = get_candidate_or_raise(conn, candidate_id=candidate_id, for_update=True)
    if c["stage"] in ("hired", "rejected", "withdrawn"):
        raise Conflict(f"candidate {candidate_id} is already {c['stage']}")
    return _set(
        conn,
        candidate_id,
        actor,
        "withdraw" if withdrawn else "reject",
        "withdrawn" if withdrawn else "rejected",
    )


def hire(conn: Conn, *, candidate_id: int, data: dict, actor: dict, cipher: FieldCipher) -> dict:
    """Offered → hired: the staff user (role from the requisition) and the employee record with the offered pay."""
    c = _step(conn, candidate_id, "hire")
    req = get_requisition_or_raise(conn, requisition_id=c["requisition_id"])
    if req["status"] != "open":
        raise Conflict(f"requisition {req['id']} is {req['status']}")
    offered = json.loads(
        cipher.decrypt(
            one(conn.execute("SELECT offer_enc FROM candidates WHERE id = %s", (candidate_id,)))["offer_enc"],
            context=offer_context(candidate_id),
        )
        or "{}"
    )
    user = staff.create(
        conn, actor=actor, username=data["username"], password=data["password"], role=req["role"],
        full_name=c["full_name"], department=req["department"], email=c["email"],
    )  # fmt: skip
    emp = employees.create(
        conn,
        data={
            "username": user["username"], "full_name": c["full_name"], "department": req["department"],
            "position": req["position"], "manager_id": data.get("manager_id"), "hire_date": c["offer_start_date"],
            "contract_type": data["contract_type"], "contract_end": data.get("contract_end"),
            "base_salary": offered["base"], "allowance": offered["allowance"], "national_id": data.get("national_id"),
        },
        actor=actor,
        cipher=cipher,
    )  # fmt: skip
    after = _set(conn, candidate_id, actor, "hire", "hired", employee_id=emp["id"])
    hired = one(
        conn.execute(
            "SELECT count(*) AS n FROM candidates WHERE requisition_id = %s AND stage = 'hired'", (req["id"],)
        )
    )["n"]
    if hired >= req["headcount"]:
        conn.execute("UPDATE job_requisitions SET status = 'filled' WHERE id = %s", (req["id"],))
        audit(conn, actor=actor, action="requisition.filled", entity="job_requisitions", entity_id=req["id"])
    return {"candidate": after, "employee": emp, "user": user}


def rotate_keys(conn: Conn, *, cipher: FieldCipher, actor: dict | None) -> int:
    """Re-encrypt offers written under an older field key; returns how many."""
    n = 0
    for r in conn.execute(
        "SELECT id, offer_enc FROM candidates WHERE offer_enc IS NOT NULL FOR UPDATE"
    ).fetchall():
        if cipher.needs_rotation(r["offer_enc"]):
            ctx = offer_context(r["id"])
            conn.execute(
                "UPDATE candidates SET offer_enc = %s WHERE id = %s",
                (cipher.encrypt(cipher.decrypt(r["offer_enc"], context=ctx), context=ctx), r["id"]),
            )
            n += 1
    audit(conn, actor=actor, action="candidate.rotate_keys", entity="candidates", after={"rows": n})
    return n
