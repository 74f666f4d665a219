"""Performance-review routes under /api/v1/hr/reviews: hr opens and rates reviews (KPIs computed from the system);
an admin approves the outcome."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from backoffice.performance import models as m
from backoffice.performance import service
from fleetcore.api.deps import CipherDep, ConnDep, require_roles
from fleetcore.api.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1/hr/reviews", tags=["hr"], responses=ERROR_RESPONSES)
Hr = Annotated[dict, Depends(require_roles("hr"))]
Admin = Annotated[dict, Depends(require_roles("admin"))]


@router.post("", status_code=201, response_model=m.ReviewOut)
def create_review(body: m.ReviewIn, user: Hr, conn: ConnDep, cipher: CipherDep) -> dict:
    """Open a review for a period; its KPIs are computed from the system (hr)."""
    r = service.create(
        conn, employee_id=body.employee_id, start=body.period_start, end=body.period_end, actor=user
    )
    return service.present(r, viewer=user, cipher=cipher)


@router.get("", response_model=list[m.ReviewOut])
def list_reviews(
    user: Hr,
    conn: ConnDep,
    cipher: CipherDep,
    employee_id: Annotated[int | None, Query(gt=0)] = None,
    status: Annotated[str | None, Query(pattern="^(draft|rated|approved)$")] = None,
) -> list[dict]:
    """Reviews, latest period first (hr)."""
    return [service.present(r, viewer=user, cipher=cipher)
            for r in service.list_(conn, employee_id=employee_id, status=status)]  # fmt: skip


@router.get("/{review_id}", response_model=m.ReviewOut)
def get_review(review_id: int, user: Hr, conn: ConnDep, cipher: CipherDep) -> dict:
    """One review (hr)."""
    return service.present(service.get_or_raise(conn, review_id=review_id), viewer=user, cipher=cipher)


@router.post("/{review_id}/refresh", response_model=m.ReviewOut)
def refresh(review_id: int, user: Hr, conn: ConnDep, cipher: CipherDep) -> dict:
    """Compute a draft review's KPIs again (hr)."""
    return service.present(service.refresh(conn, review_id=review_id, actor=user), viewer=user, cipher=cipher)


@router.post("/{review_id}/rating", response_model=m.ReviewOut)
def rate(review_id: int, body: m.RatingIn, user: Hr, conn: ConnDep, cipher: CipherDep) -> dict:
    """The manager's rating and proposed outcome (hr)."""
    r = service.rate(conn, review_id=review_id, data=body.model_dump(), actor=user, cipher=cipher)
    return service.present(r, viewer=user, cipher=cipher)


@router.post("/{review_id}/approve", response_model=m.ReviewOut)
def approve(review_id: int, user: Admin, conn: ConnDep, cipher: CipherDep) -> dict:
    """Approve the outcome: a pay change or promotion takes effect, a bonus goes to this month's payroll (admin)."""
    return service.present(service.approve(conn, review_id=review_id, actor=user, cipher=cipher), viewer=user,
                           cipher=cipher)  # fmt: skip
