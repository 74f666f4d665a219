"""Station request and response schemas (table: stations, migration 0001)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

STATION_CODE_PATTERN = r"^[A-Za-z0-9_-]{2,16}$"
StationCode = Field(pattern=STATION_CODE_PATTERN, description="station code, e.g. BER-HBF")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class StationIn(_In):
    code: str = StationCode
    name: str = Field(min_length=1, max_length=200)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class StationPatch(_In):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)


class StationOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: int
    code: str
    name: str
    lat: float
    lon: float
    created_at: dt.datetime
    vehicles: int | None = Field(
        default=None, description="vehicles based here, retired excluded (lists only)"
    )
