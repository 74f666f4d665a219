"""Schemas and constants of broker accounts (device identity)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# What each service account may do at the broker; devices may only publish under their own id. A gateway
# republishes vendor devices (Teltonika, JT/T 808) into the contract: it writes every device's topics.
SERVICE_ROLES = ("ingest", "monitor", "simulator", "gateway")
ServiceRole = Literal["ingest", "monitor", "simulator", "gateway"]
# A device secret: 32 random bytes, base64url (43 characters), like the API's token secret.
SECRET_BYTES = 32
# PBKDF2 iterations: Mosquitto's own default (mosquitto_passwd, $7$ format). The secrets are random 256-bit values,
# so the iteration count does not protect them; a higher one only costs broker CPU on every (re)connect.
PBKDF2_ITERATIONS = 101
# Mosquitto 2.0 accepts only 12-byte salts ("Unable to decode password salt" otherwise); 62^12 ≈ 2^71 values.
SALT_CHARS = 12


class AccountOut(BaseModel):
    """A broker account, without its secret."""

    username: str
    kind: Literal["device", "service"]
    role: str
    device_id: str | None
    active: bool
    created_at: dt.datetime
    created_by: str
    rotated_at: dt.datetime | None
    revoked_at: dt.datetime | None


class IssuedSecret(BaseModel):
    """A new or rotated credential: the secret is in this response only, never stored or shown again."""

    username: str = Field(description="the MQTT username (the device id for a device)")
    secret: str = Field(description="the MQTT password; store it in the device now, it cannot be shown again")
    account: AccountOut


class ServiceAccountIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", examples=["ingest"])
    role: ServiceRole
