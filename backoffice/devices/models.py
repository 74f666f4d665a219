"""Device request and response schemas (tables: devices and device_installs, migration 0001)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEVICE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
DeviceProtocol = Literal["json", "obd", "nmea"]


class DeviceIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    device_id: str = Field(pattern=DEVICE_ID_PATTERN)
    protocol: DeviceProtocol | None = None


class DeviceInstallOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: int
    device_id: str
    protocol: str | None = None
    installed_at: dt.datetime
    removed_at: dt.datetime | None
