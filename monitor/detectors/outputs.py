"""What the detectors produce and know: outputs (Detection, Clear, StateChange) and the vehicle's registry facts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(slots=True)
class Detection:
    kind: str
    severity: str
    ts: datetime
    message: str
    evidence: dict


@dataclass(slots=True)
class Clear:
    kind: str
    ts: datetime
    reason: str


@dataclass(slots=True)
class StateChange:
    what: str  # online | offline | station_enter | station_exit
    ts: datetime
    data: dict = field(default_factory=dict)


Output = Detection | Clear | StateChange


@dataclass(slots=True)
class VehicleInfo:
    """What the monitor needs to know about a vehicle from the registry and the back office."""

    vehicle_id: int
    device_id: str
    vehicle_class: str = "compact"
    status: str = "available"
    vin: str = ""


def evidence_of(r: dict) -> dict:
    """A reading as compact JSON-able evidence (absent fields dropped)."""
    out = {}
    for k, v in r.items():
        if v is None or k == "device_id":
            continue
        out[k] = v.isoformat() if isinstance(v, datetime) else v
    return out
