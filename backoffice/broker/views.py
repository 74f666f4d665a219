"""Device credentials (`/api/v1/fleet/devices/{device_id}/credentials`) and service accounts (`/api/v1/broker/...`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from backoffice.broker import service
from backoffice.broker.models import AccountOut, IssuedSecret, ServiceAccountIn
from fleetcore.api.deps import ConnDep, require_roles
from fleetcore.api.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1", tags=["device identity"], responses=ERROR_RESPONSES)
# Technicians install devices and so provision them; only an administrator manages service accounts.
Installer = Annotated[dict, Depends(require_roles("technician"))]
Admin = Annotated[dict, Depends(require_roles("admin"))]


def _issued(secret: str, account: dict) -> IssuedSecret:
    return IssuedSecret(username=account["username"], secret=secret, account=AccountOut(**account))


@router.post("/fleet/devices/{device_id}/credentials", response_model=IssuedSecret, status_code=201)
def issue_device_credential(device_id: str, conn: ConnDep, user: Installer) -> IssuedSecret:
    """Issue the device's MQTT credential (username = device id). The secret is shown in this answer only."""
    return _issued(*service.issue_device(conn, device_id=device_id, actor=user))


@router.get("/fleet/devices/{device_id}/credentials", response_model=AccountOut)
def get_device_credential(device_id: str, conn: ConnDep, user: Installer) -> dict:
    """The device's credential: active or revoked, when issued and rotated (never the secret)."""
    return service.get_or_raise(conn, username=device_id, kind="device")


@router.post("/fleet/devices/{device_id}/credentials/rotate", response_model=IssuedSecret)
def rotate_device_credential(device_id: str, conn: ConnDep, user: Installer) -> IssuedSecret:
    """A new secret for the device; the old one stops working when the broker reloads its accounts."""
    return _issued(*service.rotate(conn, username=device_id, kind="device", actor=user))


@router.delete("/fleet/devices/{device_id}/credentials", response_model=AccountOut)
def revoke_device_credential(device_id: str, conn: ConnDep, user: Installer) -> dict:
    """Revoke the device's credential: it can no longer connect once the broker reloads its accounts."""
    return service.revoke(conn, username=device_id, kind="device", actor=user)


@router.get("/broker/accounts", response_model=list[AccountOut])
def list_accounts(
    conn: ConnDep,
    user: Admin,
    kind: Annotated[str | None, Query(pattern="^(device|service)$")] = None,
    active: bool | None = None,
) -> list[dict]:
    """Every broker account (devices and services), without secrets."""
    return service.list_(conn, kind=kind, active=active)


@router.post("/broker/service-accounts", response_model=IssuedSecret, status_code=201)
def create_service_account(body: ServiceAccountIn, conn: ConnDep, user: Admin) -> IssuedSecret:
    """A service account for ingest, monitor or the simulator; the secret is shown in this answer only."""
    return _issued(*service.create_service(conn, username=body.username, role=body.role, actor=user))


@router.post("/broker/service-accounts/{username}/rotate", response_model=IssuedSecret)
def rotate_service_account(username: str, conn: ConnDep, user: Admin) -> IssuedSecret:
    """A new secret for a service account."""
    return _issued(*service.rotate(conn, username=username, kind="service", actor=user))


@router.delete("/broker/service-accounts/{username}", response_model=AccountOut)
def revoke_service_account(username: str, conn: ConnDep, user: Admin) -> dict:
    """Revoke a service account."""
    return service.revoke(conn, username=username, kind="service", actor=user)
