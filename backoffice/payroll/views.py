"""Payroll routes under /api/v1/hr/payroll: runs (hr, admin; totals also for finance), payslips (hr, admin),
profiles (admin changes the rules)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from backoffice.payroll import models as m
from backoffice.payroll import service
from fleetcore.api.deps import CipherDep, ConnDep, require_roles
from fleetcore.api.errors import ERROR_RESPONSES
from fleetcore.jsonable import to_json

router = APIRouter(prefix="/api/v1/hr/payroll", tags=["hr"], responses=ERROR_RESPONSES)
Hr = Annotated[dict, Depends(require_roles("hr"))]
HrOrFinance = Annotated[dict, Depends(require_roles("hr", "finance"))]
Admin = Annotated[dict, Depends(require_roles("admin"))]
PeriodPath = Annotated[str, Path(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$")]
CodePath = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{1,31}$")]


@router.post("/runs", status_code=201, response_model=m.RunOut)
def run_payroll(body: m.RunIn, response: Response, user: Hr, conn: ConnDep, cipher: CipherDep) -> dict:
    """Run the month's payroll; a month that already has its run answers 200 with it, unchanged (hr)."""
    row, created = service.run(conn, period=body.period, actor=user, cipher=cipher)
    if not created:
        response.status_code = 200
    return {**row, "created": created}


@router.get("/runs", response_model=list[m.RunOut])
def list_runs(user: HrOrFinance, conn: ConnDep) -> list[dict]:
    """Runs with their totals, latest first (hr, finance)."""
    return service.list_runs(conn)


@router.get("/runs/{period}", response_model=m.RunOut)
def get_run(period: PeriodPath, user: HrOrFinance, conn: ConnDep) -> dict:
    """One month's run and totals (hr, finance)."""
    return service.get_run_or_raise(conn, period=period)


@router.get("/runs/{period}/payslips", response_model=list[m.PayslipOut])
def payslips(period: PeriodPath, user: Hr, conn: ConnDep, cipher: CipherDep) -> list[dict]:
    """Every payslip of the month (hr, admin)."""
    return service.payslips(conn, period=period, cipher=cipher)


@router.get("/profiles", response_model=list[m.ProfileOut])
def profiles(user: Hr, conn: ConnDep) -> list[dict]:
    """Payroll profiles and their rules (hr)."""
    return service.list_profiles(conn)


@router.put("/profiles/{code}", response_model=m.ProfileOut)
def set_profile(code: CodePath, body: m.ProfileIn, user: Admin, conn: ConnDep) -> dict:
    """Create or change a profile's rules (admin)."""
    return to_json(service.set_profile(conn, code=code, name=body.name, rules=body.rules, actor=user))
