"""All vehicles: raw MQTT messages parsed and routed to each vehicle's detectors.

`history(info, before, seconds)` (optional, I/O supplied by the caller) gives a vehicle's stored samples from
`seconds` before `before` up to it; a vehicle's detectors replay them (`VehicleMonitor.warm`) before its first
sample or event in this process, so windows that began before a restart are judged whole.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fleetcore.protocol.parse import Rejection, process_message, reading_as_dict
from monitor.detectors.outputs import Output, Restored, VehicleInfo
from monitor.detectors.vehicle import VehicleMonitor
from monitor.geofence import GeofenceSet
from monitor.thresholds import DEFAULT, Thresholds


class FleetMonitor:
    """All vehicles: parses raw MQTT messages and routes them to each vehicle's detectors."""

    def __init__(
        self,
        root: str,
        lookup: Callable[[str], VehicleInfo | None],
        *,
        thresholds: Callable[[str], Thresholds] | None = None,
        geofences: GeofenceSet | None = None,
        history: Callable[[VehicleInfo, datetime, float], list[dict]] | None = None,
    ) -> None:
        self.root = root
        self.lookup = lookup
        self.history = history
        self.thresholds = thresholds or (lambda _cls: DEFAULT)
        self.geofences = geofences
        self.vehicles: dict[str, VehicleMonitor] = {}
        self.rejected = 0
        self.unknown = 0

    def vehicle(self, device_id: str) -> VehicleMonitor | None:
        vm = self.vehicles.get(device_id)
        if vm is None:
            info = self.lookup(device_id)
            if info is None:
                return None
            vm = VehicleMonitor(info, self.thresholds(info.vehicle_class), self.geofences)
            self.vehicles[device_id] = vm
        return vm

    def restore(self, info: VehicleInfo, restored: Restored) -> VehicleMonitor:
        """Start a vehicle's detectors from what the database knows (monitor start-up)."""
        vm = VehicleMonitor(info, self.thresholds(info.vehicle_class), self.geofences)
        vm.restore(restored)
        self.vehicles[info.device_id] = vm
        return vm

    def forget(self, device_id: str) -> bool:
        """Drop a device's detectors (removed, or moved to another vehicle); whether it had any."""
        return self.vehicles.pop(device_id, None) is not None

    def set_geofences(self, geofences: GeofenceSet | None) -> None:
        self.geofences = geofences
        for vm in self.vehicles.values():
            vm.geofences = geofences

    def handle(
        self, topic: str, payload: bytes, now: datetime, *, retained: bool = False
    ) -> list[tuple[VehicleInfo, Output]]:
        """Parse one message and run its vehicle's detectors; bad or unknown-device messages yield nothing.

        `retained`: the broker delivered a retained message because the monitor subscribed; only a status is
        used (as a fact, not a sign of life), other retained samples were judged when they were live.
        """
        parsed = process_message(self.root, topic, payload, now=now)
        if isinstance(parsed, Rejection):
            self.rejected += 1
            return []
        vm = self.vehicle(parsed.device_id)
        if vm is None:
            self.unknown += 1
            return []
        if retained:
            status = parsed.status
            return [(vm.info, o) for o in vm.on_status(status, now, retained=True)] if status else []
        out: list[Output] = []
        readings = [reading_as_dict(row) for row in parsed.readings]
        if vm.needs_history and self.history is not None and (readings or parsed.events):
            # the samples before this message's oldest were judged already (or by no one): replay them silently
            before = min([r["ts"] for r in readings] + [ev.ts for ev in parsed.events])
            vm.warm(self.history(vm.info, before, vm.history_s()))
        if parsed.status is not None:
            out += vm.on_status(parsed.status, now)
        if readings:
            out += vm.on_readings(readings, now)
        for ev in parsed.events:
            out += vm.on_event(ev.type, ev.ts, ev.data, now)
        if not parsed.readings and not parsed.events and parsed.status is None:
            out += vm.heard(now)
        return [(vm.info, o) for o in out]

    def tick(self, now: datetime, *, silence: bool = True) -> list[tuple[VehicleInfo, Output]]:
        """Run every vehicle's time-driven checks (device silence only when `silence`)."""
        out = []
        for vm in self.vehicles.values():
            out += [(vm.info, o) for o in vm.tick(now, silence=silence)]
        return out
