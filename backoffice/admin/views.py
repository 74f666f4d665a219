"""Administration routes under /api/v1/admin: office supplies (admin manages; any staff asks for supplies), facility
upkeep (any staff reports; admin handles), rooms and meetings (any staff books; admin adds rooms)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from backoffice.admin import meetings, supplies
from backoffice.admin import models as m
from fleetcore.api.deps import ALL_ROLES, ConnDep, require_roles
from fleetcore.api.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1/admin", tags=["administration"], responses=ERROR_RESPONSES)
Admin = Annotated[dict, Depends(require_roles("admin"))]
Staff = Annotated[dict, Depends(require_roles(*ALL_ROLES))]


@router.get("/supplies/items", response_model=list[m.ItemOut])
def items(user: Staff, conn: ConnDep, below_reorder: bool = False) -> list[dict]:
    """Office supplies and their stock (any staff)."""
    return supplies.list_items(conn, below_reorder=below_reorder)


@router.post("/supplies/items", status_code=201, response_model=m.ItemOut)
def create_item(body: m.ItemIn, user: Admin, conn: ConnDep) -> dict:
    """Add an item with its reorder point (admin)."""
    return supplies.create_item(conn, data=body.model_dump(), actor=user)


@router.post("/supplies/plans", status_code=201, response_model=m.PlanOut)
def create_plan(body: m.PlanIn, user: Admin, conn: ConnDep) -> dict:
    """A purchase plan; without lines, every item at its reorder point at its reorder quantity (admin)."""
    lines = (
        [ln.model_dump() for ln in body.lines]
        if body.lines is not None
        else supplies.suggest_plan_lines(conn)
    )
    return supplies.create_plan(conn, period=body.period, lines=lines, note=body.note, actor=user)


@router.get("/supplies/plans/{plan_id}", response_model=m.PlanOut)
def get_plan(plan_id: int, user: Admin, conn: ConnDep) -> dict:
    """One purchase plan with lines and total (admin)."""
    return supplies.get_plan_or_raise(conn, plan_id=plan_id)


@router.post("/supplies/plans/{plan_id}/status", response_model=m.PlanOut)
def plan_status(plan_id: int, body: m.PlanStatusIn, user: Admin, conn: ConnDep) -> dict:
    """Approve, receive (stock comes in) or cancel a plan (admin)."""
    return supplies.advance_plan(conn, plan_id=plan_id, to=body.status, actor=user)


@router.post("/supplies/requisitions", status_code=201, response_model=m.RequisitionOut)
def request_supplies(body: m.RequisitionIn, user: Staff, conn: ConnDep) -> dict:
    """Ask for supplies for one's department (any staff)."""
    return supplies.request(
        conn, lines=[ln.model_dump() for ln in body.lines], purpose=body.purpose, actor=user
    )


@router.get("/supplies/requisitions", response_model=list[m.RequisitionOut])
def list_requisitions(
    user: Admin,
    conn: ConnDep,
    status: Annotated[str | None, Query(pattern="^(pending|approved|rejected|issued)$")] = None,
) -> list[dict]:
    """Requisitions, newest first (admin)."""
    return supplies.list_requisitions(conn, status=status)


@router.post("/supplies/requisitions/{requisition_id}/decision", response_model=m.RequisitionOut)
def decide(requisition_id: int, body: m.DecisionIn, user: Admin, conn: ConnDep) -> dict:
    """Approve or reject a requisition (admin, not the requester)."""
    return supplies.decide(conn, requisition_id=requisition_id, approve=body.approve, actor=user)


@router.post("/supplies/requisitions/{requisition_id}/issue", response_model=m.RequisitionOut)
def issue(requisition_id: int, user: Admin, conn: ConnDep) -> dict:
    """Hand out an approved requisition; items at their reorder point notify the admins (admin)."""
    return supplies.issue(conn, requisition_id=requisition_id, actor=user)


@router.post("/supplies/counts", status_code=201, response_model=m.CountOut)
def stock_count(body: m.CountIn, user: Admin, conn: ConnDep) -> dict:
    """A stock count: variances recorded, stock corrected (admin)."""
    return supplies.count(conn, lines=[ln.model_dump() for ln in body.lines], note=body.note, actor=user)


@router.post("/facilities/requests", status_code=201, response_model=m.FacilityOut)
def facility_request(body: m.FacilityIn, user: Staff, conn: ConnDep) -> dict:
    """Report an office or facility problem (any staff)."""
    return meetings.facility_request(conn, data=body.model_dump(), actor=user)


@router.get("/facilities/requests", response_model=list[m.FacilityOut])
def facility_requests(
    user: Staff, conn: ConnDep,
    status: Annotated[str | None, Query(pattern="^(open|in_progress|done|cancelled)$")] = None,
) -> list[dict]:  # fmt: skip
    """Facility requests, urgent first (any staff)."""
    return meetings.list_facility_requests(conn, status=status)


@router.patch("/facilities/requests/{request_id}", response_model=m.FacilityOut)
def update_facility_request(request_id: int, body: m.FacilityPatch, user: Admin, conn: ConnDep) -> dict:
    """Assign, progress or close a facility request (admin)."""
    return meetings.update_facility_request(conn, request_id=request_id, status=body.status, assignee=body.assignee,
                                            note=body.note, actor=user)  # fmt: skip


@router.get("/rooms", response_model=list[m.RoomOut])
def rooms(user: Staff, conn: ConnDep) -> list[dict]:
    """Meeting rooms (any staff)."""
    return meetings.list_rooms(conn)


@router.post("/rooms", status_code=201, response_model=m.RoomOut)
def create_room(body: m.RoomIn, user: Admin, conn: ConnDep) -> dict:
    """Add a room (admin)."""
    return meetings.create_room(conn, data=body.model_dump(), actor=user)


@router.get("/bookings", response_model=list[m.BookingOut])
def bookings(
    user: Staff,
    conn: ConnDep,
    start: Annotated[dt.datetime, Query(alias="from")],
    end: Annotated[dt.datetime, Query(alias="to")],
    room_id: Annotated[int | None, Query(gt=0)] = None,
) -> list[dict]:
    """Live bookings overlapping [from, to) (any staff)."""
    return meetings.list_bookings(conn, room_id=room_id, start=start, end=end)


@router.post("/bookings", status_code=201, response_model=m.BookingOut)
def book(body: m.BookingIn, user: Staff, conn: ConnDep) -> dict:
    """Book a room for a meeting or event; an overlapping booking is refused with 409 (any staff)."""
    return meetings.book(conn, data=body.model_dump(), actor=user)


@router.get("/bookings/{booking_id}", response_model=m.BookingOut)
def get_booking(booking_id: int, user: Staff, conn: ConnDep) -> dict:
    """One booking with minutes and action items (any staff)."""
    return meetings.get_booking_or_raise(conn, booking_id=booking_id)


@router.post("/bookings/{booking_id}/cancel", response_model=m.BookingOut)
def cancel(booking_id: int, user: Staff, conn: ConnDep) -> dict:
    """Cancel (organiser or admin)."""
    return meetings.cancel(conn, booking_id=booking_id, actor=user)


@router.post("/bookings/{booking_id}/minutes", response_model=m.BookingOut)
def minutes(booking_id: int, body: m.MinutesIn, user: Staff, conn: ConnDep) -> dict:
    """Minutes and action items with owner and due date (organiser or admin)."""
    return meetings.record_minutes(conn, booking_id=booking_id, minutes=body.minutes,
                                   actions=[a.model_dump() for a in body.actions], actor=user)  # fmt: skip


@router.get("/actions/mine", response_model=list[m.ActionOut])
def my_actions(user: Staff, conn: ConnDep, open_only: bool = True) -> list[dict]:
    """The signed-in user's action items, by due date (any staff)."""
    return meetings.my_actions(conn, owner=user["username"], open_only=open_only)


@router.post("/actions/{action_id}/done", response_model=m.ActionOut)
def action_done(action_id: int, user: Staff, conn: ConnDep) -> dict:
    """Mark an action item done (its owner or an admin)."""
    return meetings.complete_action(conn, action_id=action_id, actor=user)
