"""Administration / HR API: staff users (create, list, update, role, deactivate, password reset), departments,
and under /api/v1/hr: employees, recruitment, leave and attendance.

Admin and hr manage users and employees; only an admin may touch admin accounts or grant the admin role. Any staff
reads the employee directory, but pay and identity numbers only reach hr and admin (employees.present).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from backoffice.auth import service as auth
from backoffice.auth.models import UserOut
from backoffice.hr import employees, leave, recruitment, service
from backoffice.hr import models as m
from fleetcore.api.deps import ALL_ROLES, CipherDep, ConnDep, require_roles
from fleetcore.api.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1", tags=["hr"], responses=ERROR_RESPONSES)
AdminOrHr = Annotated[dict, Depends(require_roles("hr"))]
Admin = Annotated[dict, Depends(require_roles("admin"))]
Staff = Annotated[dict, Depends(require_roles(*ALL_ROLES))]


@router.get("/users", response_model=list[UserOut])
def list_users(
    conn: ConnDep,
    user: AdminOrHr,
    role: m.Role | None = None,
    department: str | None = None,
    active: bool | None = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[dict]:
    """Staff users (admin, hr)."""
    return auth.list_(conn, role=role, department=department, active=active, q=q, limit=limit, offset=offset)


@router.post("/users", status_code=201, response_model=UserOut)
def create_user(body: m.UserIn, conn: ConnDep, user: AdminOrHr) -> dict:
    """Create a staff user (admin, hr; only admin creates admins)."""
    return service.create(conn, actor=user, **body.model_dump())


@router.get("/users/{username}", response_model=UserOut)
def get_user(username: str, conn: ConnDep, user: AdminOrHr) -> dict:
    """One staff user (admin, hr)."""
    return auth.get_or_raise(conn, username=username)


@router.patch("/users/{username}", response_model=UserOut)
def update_user(username: str, body: m.UserPatch, conn: ConnDep, user: AdminOrHr) -> dict:
    """Change name, department or email (admin, hr)."""
    return service.update(conn, actor=user, username=username, changes=body.model_dump(exclude_unset=True))


@router.post("/users/{username}/role", response_model=UserOut)
def change_role(username: str, body: m.RoleIn, conn: ConnDep, user: Admin) -> dict:
    """Give the user another role (admin only)."""
    return service.change_role(conn, actor=user, username=username, role=body.role)


@router.post("/users/{username}/deactivate", response_model=UserOut)
def deactivate_user(username: str, conn: ConnDep, user: AdminOrHr) -> dict:
    """Deactivate: login and existing tokens stop working (admin, hr)."""
    return service.set_active(conn, actor=user, username=username, active=False)


@router.post("/users/{username}/activate", response_model=UserOut)
def activate_user(username: str, conn: ConnDep, user: AdminOrHr) -> dict:
    """Reactivate a deactivated user (admin, hr)."""
    return service.set_active(conn, actor=user, username=username, active=True)


@router.post("/users/{username}/password", status_code=204)
def reset_password(username: str, body: m.PasswordResetIn, conn: ConnDep, user: Admin) -> None:
    """Set a new password; the user's existing tokens are revoked (admin only). The password is never audited."""
    service.reset_password(conn, actor=user, username=username, password=body.password)


@router.get("/departments", response_model=list[m.DepartmentOut])
def list_departments(conn: ConnDep, user: Staff) -> list[dict]:
    """Departments with their active staff counts (any staff)."""
    return service.list_departments(conn)


@router.post("/departments", status_code=201, response_model=m.DepartmentOut)
def create_department(body: m.DepartmentIn, conn: ConnDep, user: AdminOrHr) -> dict:
    """Add a department (admin, hr)."""
    return service.create_department(conn, code=body.code, name=body.name, actor=user)


@router.patch("/departments/{code}", response_model=m.DepartmentOut)
def rename_department(code: str, body: m.DepartmentPatch, conn: ConnDep, user: AdminOrHr) -> dict:
    """Rename a department (admin, hr)."""
    return service.rename_department(conn, code=code, name=body.name, actor=user)


@router.put("/departments/{code}/supervisor", response_model=m.DepartmentOut)
def set_supervisor(code: str, body: m.SupervisorIn, conn: ConnDep, user: AdminOrHr) -> dict:
    """Name the department's supervisor, who gets its overdue cases' escalations (admin, hr)."""
    return service.set_supervisor(conn, code=code, username=body.supervisor, actor=user)


# ---- employees -------------------------------------------------------------------------------------------------


@router.get("/hr/employees", response_model=list[m.EmployeeOut])
def list_employees(
    conn: ConnDep,
    user: Staff,
    cipher: CipherDep,
    department: Annotated[str | None, Query(max_length=32)] = None,
    status: Annotated[str | None, Query(pattern="^(active|on_leave|terminated)$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[dict]:
    """The employee directory (any staff); pay and identity numbers for hr and admin only."""
    rows = employees.list_(conn, department=department, status=status, limit=limit, offset=offset)
    return [employees.present(r, viewer=user, cipher=cipher) for r in rows]


@router.post("/hr/employees", status_code=201, response_model=m.EmployeeOut)
def create_employee(body: m.EmployeeIn, conn: ConnDep, user: AdminOrHr, cipher: CipherDep) -> dict:
    """The employee record of an existing staff user (admin, hr)."""
    e = employees.create(conn, data=body.model_dump(), actor=user, cipher=cipher)
    return employees.present(e, viewer=user, cipher=cipher)


@router.get("/hr/employees/{employee_id}", response_model=m.EmployeeOut)
def get_employee(employee_id: int, conn: ConnDep, user: Staff, cipher: CipherDep) -> dict:
    """One employee (any staff); pay and identity number for hr and admin only."""
    return employees.present(
        employees.get_or_raise(conn, employee_id=employee_id), viewer=user, cipher=cipher
    )


@router.patch("/hr/employees/{employee_id}", response_model=m.EmployeeOut)
def update_employee(
    employee_id: int, body: m.EmployeePatch, conn: ConnDep, user: AdminOrHr, cipher: CipherDep
) -> dict:
    """Department, position, manager, contract, status, leave entitlement (admin, hr)."""
    e = employees.update(
        conn, employee_id=employee_id, changes=body.model_dump(exclude_unset=True), actor=user
    )
    return employees.present(e, viewer=user, cipher=cipher)


@router.put("/hr/employees/{employee_id}/pay", response_model=m.EmployeeOut)
def set_pay(employee_id: int, body: m.PayIn, conn: ConnDep, user: AdminOrHr, cipher: CipherDep) -> dict:
    """Set monthly base pay and allowances (admin, hr)."""
    e = employees.set_pay(conn, employee_id=employee_id, base=body.base_salary, allowance=body.allowance,
                          actor=user, cipher=cipher)  # fmt: skip
    return employees.present(e, viewer=user, cipher=cipher)


# ---- recruitment -----------------------------------------------------------------------------------------------


@router.post("/hr/requisitions", status_code=201, response_model=m.RequisitionOut)
def create_requisition(body: m.RequisitionIn, conn: ConnDep, user: AdminOrHr) -> dict:
    """A hiring plan: department, position, role, headcount (admin, hr)."""
    return recruitment.create_requisition(conn, data=body.model_dump(), actor=user)


@router.get("/hr/requisitions", response_model=list[m.RequisitionOut])
def list_requisitions(
    conn: ConnDep,
    user: AdminOrHr,
    status: Annotated[str | None, Query(pattern="^(open|filled|cancelled)$")] = None,
) -> list[dict]:
    """Requisitions, newest first (admin, hr)."""
    return recruitment.list_requisitions(conn, status=status)


@router.post("/hr/requisitions/{requisition_id}/candidates", status_code=201, response_model=m.CandidateOut)
def add_candidate(requisition_id: int, body: m.CandidateIn, conn: ConnDep, user: AdminOrHr) -> dict:
    """A candidate applies (admin, hr)."""
    return recruitment.add_candidate(conn, requisition_id=requisition_id, data=body.model_dump(), actor=user)


@router.get("/hr/requisitions/{requisition_id}/candidates", response_model=list[m.CandidateOut])
def list_candidates(requisition_id: int, conn: ConnDep, user: AdminOrHr) -> list[dict]:
    """A requisition's candidates (admin, hr)."""
    return recruitment.list_candidates(conn, requisition_id=requisition_id)


@router.post("/hr/candidates/{candidate_id}/interview", response_model=m.CandidateOut)
def interview(candidate_id: int, body: m.ScoreIn, conn: ConnDep, user: AdminOrHr) -> dict:
    """Interview score; under 60 of 100 rejects (admin, hr)."""
    return recruitment.score(conn, candidate_id=candidate_id, step="interview", value=body.score, actor=user)


@router.post("/hr/candidates/{candidate_id}/written-test", response_model=m.CandidateOut)
def written_test(candidate_id: int, body: m.ScoreIn, conn: ConnDep, user: AdminOrHr) -> dict:
    """Written-test score; under 60 of 100 rejects (admin, hr)."""
    return recruitment.score(
        conn, candidate_id=candidate_id, step="written_test", value=body.score, actor=user
    )


@router.post("/hr/candidates/{candidate_id}/background-check", response_model=m.CandidateOut)
def background_check(candidate_id: int, body: m.CheckIn, conn: ConnDep, user: AdminOrHr) -> dict:
    """Background check result; flagged rejects (admin, hr)."""
    return recruitment.background_check(conn, candidate_id=candidate_id, result=body.result, actor=user)


@router.post("/hr/candidates/{candidate_id}/offer", response_model=m.CandidateOut)
def offer(candidate_id: int, body: m.OfferIn, conn: ConnDep, user: AdminOrHr, cipher: CipherDep) -> dict:
    """Offer pay and start date (admin, hr)."""
    return recruitment.offer(conn, candidate_id=candidate_id, base_salary=body.base_salary, allowance=body.allowance,
                             start_date=body.start_date, actor=user, cipher=cipher)  # fmt: skip


@router.post("/hr/candidates/{candidate_id}/reject", response_model=m.CandidateOut)
def reject(candidate_id: int, body: m.RejectIn, conn: ConnDep, user: AdminOrHr) -> dict:
    """Reject, or record that the candidate withdrew (admin, hr)."""
    return recruitment.reject(conn, candidate_id=candidate_id, withdrawn=body.withdrawn, actor=user)


@router.post("/hr/candidates/{candidate_id}/hire", status_code=201, response_model=m.HireOut)
def hire(candidate_id: int, body: m.HireIn, conn: ConnDep, user: AdminOrHr, cipher: CipherDep) -> dict:
    """Hire: the staff user (who can log in at once) and the employee record (admin, hr)."""
    out = recruitment.hire(conn, candidate_id=candidate_id, data=body.model_dump(), actor=user, cipher=cipher)
    return {**out, "employee": employees.present(out["employee"], viewer=user, cipher=cipher)}


# ---- leave and attendance --------------------------------------------------------------------------------------


@router.post("/hr/employees/{employee_id}/leave", status_code=201, response_model=m.LeaveOut)
def request_leave(employee_id: int, body: m.LeaveIn, conn: ConnDep, user: AdminOrHr) -> dict:
    """Record a leave request (admin, hr); overlapping requests are refused."""
    return leave.request(conn, employee_id=employee_id, kind=body.kind, start=body.start_date, end=body.end_date,
                         reason=body.reason, actor=user)  # fmt: skip


@router.get("/hr/leave", response_model=list[m.LeaveOut])
def list_leave(
    conn: ConnDep,
    user: AdminOrHr,
    employee_id: Annotated[int | None, Query(gt=0)] = None,
    status: Annotated[str | None, Query(pattern="^(pending|approved|rejected|cancelled)$")] = None,
) -> list[dict]:
    """Leave requests (admin, hr)."""
    return leave.list_(conn, employee_id=employee_id, status=status)


@router.post("/hr/leave/{leave_id}/decision", response_model=m.LeaveOut)
def decide_leave(leave_id: int, body: m.DecisionIn, conn: ConnDep, user: AdminOrHr) -> dict:
    """Approve or reject a pending request (admin, hr)."""
    return leave.decide(conn, leave_id=leave_id, approve=body.approve, actor=user)


@router.get("/hr/employees/{employee_id}/leave-balance", response_model=m.BalanceOut)
def leave_balance(
    employee_id: int, conn: ConnDep, user: AdminOrHr, year: Annotated[int, Query(ge=2000, le=2100)]
) -> dict:
    """Annual leave entitlement, used or pending, remaining (admin, hr)."""
    return leave.balance(conn, employee_id=employee_id, year=year)


@router.put("/hr/employees/{employee_id}/attendance", response_model=m.AttendanceSummaryOut)
def record_attendance(employee_id: int, body: m.AttendanceIn, conn: ConnDep, user: AdminOrHr) -> dict:
    """Record clock data for days (status, overtime hours); returns the summary of those days (admin, hr)."""
    days = [d.model_dump() for d in body.days]
    leave.record_attendance(conn, employee_id=employee_id, rows=days, actor=user)
    return leave.attendance_summary(conn, employee_id=employee_id, start=min(d["day"] for d in days),
                                    end=max(d["day"] for d in days))  # fmt: skip
