"""All vehicles: raw MQTT messages parsed and routed to each vehicle's detectors."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fleetcore.protocol.parse import Rejection, process_message, reading_as_dict
from monitor.detectors.outputs import Output, VehicleInfo
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
    ) -> None:
        self.root = root
        self.lookup = lookup
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

    def set_geofences(self, geofences: GeofenceSet | None) -> None:
        self.geofences = geofences
        for vm in self.vehicles.values():
            vm.geofences = geofences

    def handle(self, topic: str, payload: bytes, now: datetime) -> list[tuple[VehicleInfo, Output]]:
        """Parse one message and run its vehicle's detectors; bad or unknown-device messages yield nothing."""
        parsed = process_message(self.root, topic, payload, now=now)
        if isinstance(parsed, Rejection):
            self.rejected += 1
            return []
        vm = self.vehicle(parsed.device_id)
        if vm is None:
            self.unknown += 1
            return []
        out: list[Output] = []
        if parsed.status is not None:
            out += vm.on_status(parsed.status, now)
        if parsed.readings:
            out += vm.on_readings([reading_as_dict(row) for row in parsed.readings], now)
        for ev in parsed.events:
            out += vm.on_event(ev.type, ev.ts, ev.data, now)
        if not parsed.readings and not parsed.events and parsed.status is None:
            out += vm.heard(now)
        return [(vm.info, o) for o in out]

    def tick(self, now: datetime) -> list[tuple[VehicleInfo, Output]]:
        """Run every vehicle's time-driven checks."""
        out = []
        for vm in self.vehicles.values():
            out += [(vm.info, o) for o in vm.tick(now)]
        return out
