"""What the detectors produce and know: outputs (Detection, Clear, StateChange), the vehicle's registry facts and
what the database tells a restarted monitor (`Restored`)."""

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


@dataclass(slots=True)
class Restored:
    """A vehicle's state as the database knows it when the monitor starts (`monitor.worker.restore` reads it).

    Detectors run on in-memory state; these facts carry over what a stopped monitor knew, so that silence and
    open alerts count across a restart. Windowed detectors get their history separately (`VehicleMonitor.warm`).
    """

    # arrival time of the device's newest message (vehicle_state.last_seen)
    last_heard: datetime | None = None
    ignition: bool | None = None
    speed_kmh: float | None = None
    # arrival time of a status `offline` (usually the last will) with nothing heard from the device after it
    offline_since: datetime | None = None
    open_alerts: dict[str, str] = field(default_factory=dict)  # kind → severity of the unresolved alerts
    last_crash_ts: datetime | None = None  # sample time of the newest recorded crash


def evidence_of(r: dict) -> dict:
    """A reading as compact JSON-able evidence (absent fields dropped)."""
    out = {}
    for k, v in r.items():
        if v is None or k == "device_id":
            continue
        out[k] = v.isoformat() if isinstance(v, datetime) else v
    return out
