"""Pure detectors over parsed samples and events: no I/O, unit-testable, replayable.

- `outputs`: what they produce, `Detection` (raise or repeat an alert), `Clear` (the condition ended:
  auto-resolve) and `StateChange` (pushed to dispatchers, not an alert), and `VehicleInfo` (registry facts);
- `vehicle`: `VehicleMonitor`, one vehicle's running state and detectors;
- `fleet`: `FleetMonitor`, which routes raw MQTT messages to the right vehicle through
  `fleetcore.protocol.parse.process_message`; the live process and the scorer both use it, so what is scored is
  what runs.
"""

from monitor.detectors.fleet import FleetMonitor
from monitor.detectors.outputs import (
    Clear,
    Detection,
    Output,
    Restored,
    StateChange,
    VehicleInfo,
    evidence_of,
)
from monitor.detectors.vehicle import VehicleMonitor

__all__ = [
    "Clear",
    "Detection",
    "FleetMonitor",
    "Output",
    "Restored",
    "StateChange",
    "VehicleInfo",
    "VehicleMonitor",
    "evidence_of",
]
