"""Training routes under /api/v1/hr/training: courses, sessions (the plan), attendance, certifications and which
certification each maintenance task type requires. hr (and admin) write; any staff reads."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from backoffice.auth import service as auth
from backoffice.training import models as m
from backoffice.training import service
from fleetcore.api.deps import ALL_ROLES, ConnDep, require_roles
from fleetcore.api.errors import ERROR_RESPONSES
from fleetcore.errors import Invalid

router = APIRouter(prefix="/api/v1/hr/training", tags=["training"], responses=ERROR_RESPONSES)
Hr = Annotated[dict, Depends(require_roles("hr"))]
Staff = Annotated[dict, Depends(require_roles(*ALL_ROLES))]


def _user_id(conn: ConnDep, username: str) -> int:
    u = auth.get(conn, username=username)
    if u is None:
        raise Invalid(f"username: no staff user {username!r}", details={"field": "username"})
    return u["id"]


@router.get("/courses", response_model=list[m.CourseOut])
def courses(user: Staff, conn: ConnDep) -> list[dict]:
    """Courses and the certification each grants."""
    return service.list_courses(conn)


@router.post("/courses", status_code=201, response_model=m.CourseOut)
def create_course(body: m.CourseIn, user: Hr, conn: ConnDep) -> dict:
    """A course; one that certifies says for how many months (hr)."""
    return service.create_course(conn, data=body.model_dump(), actor=user)


@router.get("/sessions", response_model=list[m.SessionOut])
def sessions(
    user: Staff,
    conn: ConnDep,
    start: Annotated[dt.datetime | None, Query(alias="from")] = None,
    end: Annotated[dt.datetime | None, Query(alias="to")] = None,
) -> list[dict]:
    """The training plan: sessions by start time."""
    return service.list_sessions(conn, start=start, end=end)


@router.post("/sessions", status_code=201, response_model=m.SessionOut)
def create_session(body: m.SessionIn, user: Hr, conn: ConnDep) -> dict:
    """Plan a session of a course (hr)."""
    return service.create_session(conn, data=body.model_dump(), actor=user)


@router.post("/sessions/{session_id}/attendance", response_model=m.AttendanceOut)
def attendance(session_id: int, body: m.AttendanceIn, user: Hr, conn: ConnDep) -> dict:
    """Record attendance and result; passing a certifying course issues the certification (hr)."""
    return service.record_attendance(
        conn, session_id=session_id, user_id=_user_id(conn, body.username), attended=body.attended,
        passed=body.passed, score=None if body.score is None else float(body.score), actor=user,
    )  # fmt: skip


@router.get("/certifications", response_model=list[m.CertificationOut])
def certifications(
    user: Staff,
    conn: ConnDep,
    username: Annotated[str | None, Query(max_length=64)] = None,
    valid_on: dt.date | None = None,
) -> list[dict]:
    """Certifications (of one user; `valid_on`: only those valid that day)."""
    uid = _user_id(conn, username) if username else None
    return service.list_certifications(conn, user_id=uid, valid_on=valid_on)


@router.post("/certifications", status_code=201, response_model=m.CertificationOut)
def add_certification(body: m.CertificationIn, user: Hr, conn: ConnDep) -> dict:
    """A certification earned elsewhere (hr)."""
    return service.add_certification(conn, user_id=_user_id(conn, body.username), code=body.code,
                                     issued_on=body.issued_on, expires_on=body.expires_on, actor=user)  # fmt: skip


@router.post("/certifications/{certification_id}/revoke", response_model=m.CertificationOut)
def revoke(certification_id: int, user: Hr, conn: ConnDep) -> dict:
    """Revoke a certification (hr)."""
    return service.revoke_certification(conn, certification_id=certification_id, actor=user)


@router.get("/requirements", response_model=list[m.RequirementOut])
def requirements(user: Staff, conn: ConnDep) -> list[dict]:
    """Which certification closing a work order of each maintenance kind requires."""
    return service.list_requirements(conn)


@router.put("/requirements/{task_kind}", response_model=m.RequirementOut)
def set_requirement(
    task_kind: Annotated[str, Path(pattern=m.TASK_KIND_PATTERN)],
    body: m.RequirementIn,
    user: Hr,
    conn: ConnDep,
) -> dict:
    """Require a certification for a maintenance kind, or none (hr)."""
    return service.set_requirement(conn, task_kind=task_kind, certification=body.certification, actor=user)
