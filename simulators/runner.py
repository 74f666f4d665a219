"""The simulation loop: vehicles + devices + faults, driven in memory (as fast as possible) or in real time
against an MQTT broker."""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from fleetcore.settings import Settings
from simulators.device import Device
from simulators.fleet_spec import VehicleSpec, make_spec
from simulators.jt808 import Jt808Device, Jt808Sink, terminal_spec
from simulators.scenario import (
    FIRST_OF_GROUP,
    Fault,
    Scenario,
    ScenarioError,
    Truth,
    load_scenario,
    parse_scenario,
)
from simulators.transport import MemorySink, PerDeviceSink, SharedSink, SimMessage
from simulators.vehicle import PARKED, PHYSICS_DT_MAX_S, TOWING, Vehicle

log = logging.getLogger(__name__)

# A Monday 06:00 UTC: the default start of in-memory runs, fixed so that output is reproducible.
DEFAULT_START = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
# Parked cars report every 30 s (telematics units drop to a heartbeat with the ignition off; Teltonika's
# default "on stop" period is minutes — 30 s keeps the demo lively and battery faults visible).
PARKED_REPORT_S = 30.0
STATS_EVERY_S = 10.0

ScenarioLike = Scenario | dict | str | Path | None


def as_scenario(scenario: ScenarioLike) -> Scenario | None:
    """Accept a Scenario, a parsed JSON document or a file path."""
    if scenario is None or isinstance(scenario, Scenario):
        return scenario
    if isinstance(scenario, dict):
        return parse_scenario(scenario)
    return load_scenario(scenario)


def fleet_specs(
    vehicles: int, scenario: ScenarioLike = None, *, jt808_prefix: str | None = None
) -> list[VehicleSpec]:
    """The simulated fleet's identities (index-based; vehicles with parked-only faults are not rented).

    With jt808_prefix every vehicle carries a JT/T 808 terminal instead, whose device id the JT/T 808 gateway
    derives from the terminal's phone number with that prefix (simulators.jt808.terminal_spec).
    """
    sc = as_scenario(scenario)
    parked = sc.parked_vehicles() if sc else set()
    specs = [make_spec(i, rented=False if i in parked else None) for i in range(vehicles)]
    return specs if jt808_prefix is None else [terminal_spec(s, jt808_prefix) for s in specs]


def fleet_registry(
    vehicles: int, scenario: ScenarioLike = None, *, jt808_prefix: str | None = None
) -> list[dict]:
    """What the registry should hold for the simulated fleet (device ids, VINs, classes, statuses)."""
    return [
        {
            "index": s.index,
            "device_id": s.device_id,
            "vin": s.vin,
            "plate": s.plate,
            "make": s.make,
            "model": s.model,
            "year": s.year,
            "class": s.vehicle_class,
            "station": s.home_station,
            "protocol": s.protocol,
            "status": "rented" if s.rented else "available",
        }
        for s in fleet_specs(vehicles, scenario, jt808_prefix=jt808_prefix)
    ]


class Simulation:
    """Vehicles, their devices and the injected faults, advanced one sample period per `tick()`."""

    def __init__(
        self,
        *,
        vehicles: int,
        rate_hz: float,
        seed: int,
        scenario: ScenarioLike = None,
        root: str = "fleet/v1",
        start: datetime | None = None,
        sink: MemorySink | PerDeviceSink | SharedSink | Jt808Sink | None = None,
        parked_report_s: float = PARKED_REPORT_S,
        on_truth: Callable[[Truth], None] | None = None,
        jt808_prefix: str | None = None,
    ) -> None:
        if vehicles < 1:
            raise ValueError("at least one vehicle")
        if not 0.01 <= rate_hz <= 50:
            raise ValueError("rate must be between 0.01 and 50 Hz")
        self.scenario = as_scenario(scenario)
        self.rate_hz = rate_hz
        self.dt = 1.0 / rate_hz
        self.nsub = max(1, math.ceil(self.dt / PHYSICS_DT_MAX_S - 1e-9))
        self.sub_dt = self.dt / self.nsub
        self.t0 = (start or DEFAULT_START).timestamp()
        self.k = 0
        self.parked_every = max(1, round(parked_report_s * rate_hz))
        self.specs = fleet_specs(vehicles, self.scenario, jt808_prefix=jt808_prefix)
        self.vehicles = [Vehicle(s, random.Random(f"{seed}:{s.index}"), self.t0) for s in self.specs]
        self.sink = sink if sink is not None else MemorySink()
        device_class = Device if jt808_prefix is None else Jt808Device
        self.devices = [device_class(s, root, self.sink) for s in self.specs]
        for d, v in zip(self.devices, self.vehicles, strict=True):
            d.ignition_at_boot = _ignition_of(v)
        self.faults: dict[int, list[Fault]] = {}
        self.groups: dict[str, list[Fault]] = {}  # faults of which only the first to start happens
        for n, f in enumerate(self.scenario.faults if self.scenario else []):
            if f.vehicle >= vehicles:
                raise ScenarioError(
                    f"fault {n} ({f.kind}) is for vehicle {f.vehicle}, but only {vehicles} run"
                )
            fault = Fault(f, self.t0, random.Random(f"{seed}:fault:{n}"))
            self.faults.setdefault(f.vehicle, []).append(fault)
            if (group := f.params.get(FIRST_OF_GROUP)) is not None:
                self.groups.setdefault(str(group), []).append(fault)
        self.truth: list[Truth] = []
        self.on_truth = on_truth

    @property
    def now(self) -> float:
        return self.t0 + self.k * self.dt

    def attach_all(self) -> None:
        """Connect every device (publishes their retained `online`)."""
        for d in self.devices:
            self.sink.attach(d, self.t0)

    def tick(self) -> float:
        """Advance one sample period; devices publish through the sink. Returns the new sim time."""
        self.k += 1
        t = self.t0 + self.k * self.dt
        nsub, sub_dt, k, every = self.nsub, self.sub_dt, self.k, self.parked_every
        faults = self.faults
        for i, veh in enumerate(self.vehicles):
            dev = self.devices[i]
            fl = faults.get(i)
            if fl:
                for f in fl:
                    pending = f.state == Fault.PENDING
                    tr = f.update(veh, dev, t)
                    if pending and f.state != Fault.PENDING and not f.expired:
                        self._stand_down(f)
                    if tr is not None:
                        self._record(tr)
                        for more in f.more:
                            self._record(more)
                        f.more.clear()
            if veh.mode == PARKED:
                veh.step(self.dt)  # parked dynamics are first-order decays, exact for any step
            else:
                for _ in range(nsub):
                    veh.step(sub_dt)
            veh.t = t  # no drift from summing sub-steps
            if veh.events:
                for et, etype, data in veh.events:
                    dev.event(et, etype, data)
                veh.events.clear()
            if veh.ignition or veh.v > 0.3 or veh.mode == TOWING or (k + i) % every == 0:
                dev.report(veh.snapshot())
        if isinstance(self.sink, MemorySink):
            self.sink.release(t)
        return t

    def _stand_down(self, started: Fault) -> None:
        """The other faults of the started one's group will not happen."""
        group = started.spec.params.get(FIRST_OF_GROUP)
        for f in self.groups.get(str(group), ()) if group is not None else ():
            if f is not started and f.state == Fault.PENDING:
                f.state = Fault.DONE

    def _record(self, tr: Truth) -> None:
        self.truth.append(tr)
        if self.on_truth is not None:
            self.on_truth(tr)

    def finish(self) -> None:
        """Close the labels of faults still active at the end (end = now, details.open = true)."""
        t = self.now
        for fl in self.faults.values():
            for f in fl:
                if f.state == Fault.ACTIVE and f.truth is not None:
                    f.state = Fault.DONE
                    f.truth.end = t
                    f.truth.details["open"] = True
                    self._record(f.truth)

    def messages(self, duration_s: float) -> Iterator[SimMessage]:
        """Run in memory for `duration_s` of simulated time, yielding every message in publish order
        (publish_time in epoch seconds)."""
        sink = self.sink
        if not isinstance(sink, MemorySink):
            raise TypeError("messages() needs the in-memory sink")
        if self.k == 0:
            self.attach_all()
        ticks = round(duration_s * self.rate_hz)
        for _ in range(ticks):
            self.tick()
            for t, topic, payload, qos, retain in sink.drain():
                yield SimMessage(topic, payload, t, qos, retain)
        self.finish()
        sink.release(self.now)
        for t, topic, payload, qos, retain in sink.drain():
            yield SimMessage(topic, payload, t, qos, retain)

    def registry(self) -> list[dict]:
        """The registry rows matching this run (see fleet_registry)."""
        return fleet_registry(len(self.specs), self.scenario)


def _ignition_of(v: Vehicle) -> Callable[[], bool]:
    return lambda: v.ignition


def simulate_messages(
    vehicles: int,
    rate_hz: float,
    seed: int,
    duration_s: float,
    scenario: ScenarioLike = None,
    root: str = "fleet/v1",
    *,
    start: datetime | None = None,
    truth: list[Truth] | None = None,
) -> Iterator[tuple[str, bytes, float]]:
    """In-memory run: yields (topic, payload, publish_time as epoch seconds) as fast as possible.

    Labels (Truth records) are appended to `truth` as the faults complete; call `.as_dict()` for the JSON form.
    """
    sim = Simulation(vehicles=vehicles, rate_hz=rate_hz, seed=seed, scenario=scenario, root=root, start=start)
    if truth is not None:
        sim.on_truth = truth.append
    for m in sim.messages(duration_s):
        yield m.topic, m.payload, m.publish_time


def _warm_up(sim: Simulation, seconds: float, stop: threading.Event) -> None:
    """Advance the fleet without publishing anything (devices write into a discarded in-memory sink)."""
    real = sim.sink
    scratch = MemorySink()
    sim.sink = scratch
    for d in sim.devices:
        d.sink = scratch
        d.connected = True
    for _ in range(round(seconds * sim.rate_hz)):
        if stop.is_set():
            break
        sim.tick()
        scratch.out.clear()
    sim.sink = real
    for d in sim.devices:
        d.sink = real
        d.connected = False
        d.buffer.clear()


def write_truth(records: list[Truth], fh: IO[str]) -> None:
    """Ground truth as JSON lines."""
    for r in records:
        fh.write(json.dumps(r.as_dict(), separators=(",", ":")) + "\n")
    fh.flush()


def run(
    settings: Settings,
    *,
    vehicles: int,
    rate_hz: float,
    seed: int,
    scenario: ScenarioLike = None,
    stop: threading.Event,
    speedup: float = 1.0,
    truth_out: str | Path | None = None,
    duration_s: float | None = None,
    connection: str = "per-device",
    client_prefix: str = "",
    status: Callable[[dict], None] | None = None,
    warmup_s: float = 0.0,
    parked_report_s: float = PARKED_REPORT_S,
    jt808_gateway: tuple[str, int] | None = None,
) -> None:
    """Run the fleet in real time (× speedup) against the broker in settings until `stop` is set.

    warmup_s: simulate this long silently first (the clock is back-dated), so the fleet starts mid-day with
    cars already on the road instead of all parked.
    """
    if speedup <= 0:
        raise ValueError("speedup must be positive")
    now = datetime.now(UTC)
    start = now - timedelta(seconds=warmup_s)
    if speedup > 1 and not duration_s:
        log.warning(
            "--speedup without --duration: timestamps run ahead of the clock (ingest rejects > 5 min ahead)"
        )
    if speedup > 1 and duration_s:
        # back-date so the simulated clock reaches "now" at the end: timestamps never run into the future
        start -= timedelta(seconds=duration_s * (1 - 1 / speedup))
    sink: PerDeviceSink | SharedSink | Jt808Sink
    if jt808_gateway is not None:
        # JT/T 808 terminals over TCP to the gateway, which republishes into the contract
        sink = Jt808Sink(*jt808_gateway)
    elif connection == "shared":
        url = settings.mqtt
        sink = SharedSink(url, client_id=f"{client_prefix}fleet-simulator")
        sink.start()
    elif connection == "per-device":
        sink = PerDeviceSink(settings.mqtt, client_prefix=client_prefix)
    else:
        raise ValueError("connection must be per-device or shared")
    truth_fh = open(truth_out, "a") if truth_out else None  # noqa: SIM115 (closed in finally)

    def on_truth(tr: Truth) -> None:
        if truth_fh is not None:
            write_truth([tr], truth_fh)

    sim = Simulation(
        vehicles=vehicles,
        rate_hz=rate_hz,
        seed=seed,
        scenario=scenario,
        root=settings.topic_root,
        start=start,
        sink=sink,
        on_truth=on_truth,
        parked_report_s=parked_report_s,
        jt808_prefix=settings.jt808_device_prefix if jt808_gateway is not None else None,
    )
    try:
        if warmup_s > 0:
            _warm_up(sim, warmup_s, stop)
        sink.sim_time = sim.now
        sim.attach_all()
        wall_dt = sim.dt / speedup
        next_wall = time.monotonic()
        end_k = sim.k + round(duration_s * rate_hz) if duration_s else None
        stats_t = time.monotonic()
        cpu0 = time.process_time()
        pub0 = sink.published
        log.info(
            "simulating %d vehicles at %g Hz (seed %d, %s connections, speed-up %g) on %s",
            vehicles,
            rate_hz,
            seed,
            connection,
            speedup,
            settings.topic_root,
        )
        while not stop.is_set():
            if end_k is not None and sim.k >= end_k:
                break
            sink.sim_time = sim.tick()
            next_wall += wall_dt
            behind = time.monotonic() - next_wall
            if behind > 5.0:
                next_wall = time.monotonic()  # cannot keep up: drop the backlog instead of bursting
            sink.pump(next_wall)
            if isinstance(sink, PerDeviceSink) and sink.fatal:
                raise ConnectionError(f"MQTT broker refused the device connections: {sink.fatal}")
            if isinstance(sink, Jt808Sink) and sink.fatal:
                raise ConnectionError(f"JT/T 808 gateway refused a terminal: {sink.fatal}")
            wall = time.monotonic()
            if wall - stats_t >= STATS_EVERY_S:
                cpu = time.process_time()
                info = {
                    "sim_time": datetime.fromtimestamp(sim.now, UTC).isoformat(timespec="seconds"),
                    "devices_connected": sink.connected_count(),
                    "messages_per_s": round((sink.published - pub0) / (wall - stats_t), 1),
                    "cpu_pct": round(100 * (cpu - cpu0) / (wall - stats_t), 1),
                    "truth_records": len(sim.truth),
                }
                if status is not None:
                    status(info)
                else:
                    log.info("simulator: %s", info)
                stats_t, cpu0, pub0 = wall, cpu, sink.published
    finally:
        sim.finish()
        sink.close(sim.now)
        if truth_fh is not None:
            truth_fh.close()
