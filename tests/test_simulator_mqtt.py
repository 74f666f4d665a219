"""Simulator against the real Mosquitto broker and the real registry database."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from fleetapp.cli import main as fleet_main
from fleetapp.seed import seed_registry
from fleetcore.db import Conn, one
from fleetcore.protocol.parse import Parsed, process_message
from fleetcore.settings import Settings
from simulators.runner import Simulation, run
from simulators.transport import PerDeviceSink
from tests.waiting import wait_until

pytestmark = pytest.mark.mqtt
FAULTS_FILE = Path(__file__).resolve().parent.parent / "simulators" / "scenarios" / "faults.json"


class Listener:
    """A subscriber on the test's topic root recording (topic, payload, arrival time)."""

    def __init__(self, settings: Settings) -> None:
        self.got: list[tuple[str, bytes, float]] = []
        self.lock = threading.Lock()
        url = settings.mqtt
        self.c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"sim-test-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
        )
        self.c.on_message = self._on
        ready = threading.Event()
        self.c.on_subscribe = lambda *a: ready.set()
        self.c.connect(url.host, url.port)
        self.c.subscribe(f"{settings.topic_root}/devices/#", qos=1)
        self.c.loop_start()
        assert ready.wait(5)

    def _on(self, client, userdata, msg) -> None:  # noqa: ANN001
        with self.lock:
            self.got.append((msg.topic, bytes(msg.payload), time.time()))

    def by_device(self, kind: str) -> dict[str, list[bytes]]:
        out: dict[str, list[bytes]] = defaultdict(list)
        with self.lock:
            for topic, payload, _ in self.got:
                if topic.endswith("/" + kind):
                    out[topic.split("/")[-2]].append(payload)
        return out

    def wait_for(self, pred, timeout: float = 10.0) -> bool:  # noqa: ANN001
        try:
            wait_until(pred, timeout=timeout, interval=0.05)
        except AssertionError:
            return False
        return True

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


@pytest.fixture
def listener(settings: Settings):  # noqa: ANN201
    lst = Listener(settings)
    yield lst
    lst.close()


def _prefix() -> str:
    return f"t{uuid.uuid4().hex[:6]}-"


def test_devices_announce_publish_parseable_samples_and_sign_off(
    settings: Settings, listener: Listener
) -> None:
    stop = threading.Event()
    run(
        settings,
        vehicles=6,
        rate_hz=2.0,
        seed=1,
        stop=stop,
        duration_s=4.0,
        client_prefix=_prefix(),
        parked_report_s=0.5,
    )
    assert listener.wait_for(lambda: sum(len(v) for v in listener.by_device("status").values()) >= 12)
    status = listener.by_device("status")
    assert set(status) == {f"sim-{i:05d}" for i in range(1, 7)}
    assert all(s[0] == b"online" and s[-1] == b"offline" for s in status.values())
    samples = {d for kind in ("telemetry", "obd", "nmea") for d in listener.by_device(kind)}
    assert samples == set(status)
    for topic, payload, arrived in listener.got:
        parsed = process_message(
            settings.topic_root, topic, payload, now=datetime.fromtimestamp(arrived, UTC)
        )
        assert isinstance(parsed, Parsed) and not parsed.rejections, (topic, parsed)


def _sim_with_devices(settings: Settings, vehicles: int) -> tuple[Simulation, PerDeviceSink]:
    sink = PerDeviceSink(settings.mqtt, client_prefix=_prefix())
    sim = Simulation(
        vehicles=vehicles,
        rate_hz=2.0,
        seed=2,
        root=settings.topic_root,
        start=datetime.now(UTC),
        sink=sink,
        parked_report_s=0.5,
    )
    sim.attach_all()
    deadline = time.monotonic() + 10
    while sink.connected_count() < vehicles and time.monotonic() < deadline:
        sink.pump(time.monotonic() + 0.05)
    assert sink.connected_count() == vehicles
    return sim, sink


def _tick(sim: Simulation, sink: PerDeviceSink, n: int) -> None:
    for _ in range(n):
        sink.sim_time = sim.tick()
        sink.pump(time.monotonic() + 0.02)


def test_last_will_fires_when_a_device_drops_abruptly(settings: Settings, listener: Listener) -> None:
    sim, sink = _sim_with_devices(settings, 3)
    try:
        _tick(sim, sink, 2)
        sink.abort("sim-00002")  # TCP closed without DISCONNECT
        assert listener.wait_for(
            lambda: listener.by_device("status").get("sim-00002", [])[-1:] == [b"offline"], 5
        )
        _tick(sim, sink, 2)
        status = listener.by_device("status")
        assert status["sim-00001"] == [b"online"] and status["sim-00003"] == [b"online"]
    finally:
        sink.close(sim.now)


def test_offline_buffer_is_uploaded_as_an_array_on_reconnect(settings: Settings, listener: Listener) -> None:
    sim, sink = _sim_with_devices(settings, 2)
    dev = sim.devices[0]
    assert dev.protocol == "json"
    try:
        _tick(sim, sink, 3)
        assert listener.wait_for(lambda: len(listener.by_device("telemetry").get("sim-00001", [])) >= 3)
        sink.go_silent(dev, sim.now)  # coverage lost: the device keeps sampling into its buffer
        _tick(sim, sink, 12)
        assert len(dev.buffer) == 12
        before = len(listener.by_device("telemetry")["sim-00001"])
        sink.come_back(dev, sim.now)
        _tick(sim, sink, 3)
        assert listener.wait_for(lambda: len(listener.by_device("telemetry")["sim-00001"]) >= before + 2)
    finally:
        sink.close(sim.now)
    msgs = [json.loads(p) for p in listener.by_device("telemetry")["sim-00001"]]
    arrays = [m for m in msgs if isinstance(m, list)]
    assert len(arrays) == 1 and len(arrays[0]) >= 12  # plus any sample taken before the CONNACK came back
    seqs = []
    for m in msgs:
        seqs += [x["seq"] for x in m] if isinstance(m, list) else [m["seq"]]
    assert sorted(seqs) == list(range(len(seqs)))  # nothing lost, nothing doubled
    assert listener.by_device("status")["sim-00001"][-2:] == [
        b"online",
        b"offline",
    ]  # reconnected, then closed


def test_shared_connection_mode_publishes_for_every_device(settings: Settings, listener: Listener) -> None:
    run(
        settings,
        vehicles=4,
        rate_hz=2.0,
        seed=3,
        stop=threading.Event(),
        duration_s=2.0,
        connection="shared",
        client_prefix=_prefix(),
        parked_report_s=0.5,
    )
    assert listener.wait_for(lambda: len(listener.by_device("status")) == 4)
    assert len({d for k in ("telemetry", "obd", "nmea") for d in listener.by_device(k)}) == 4


def test_seed_registry_is_idempotent(conn: Conn) -> None:
    rows = seed_registry(conn, vehicles=25, seed=1)
    again = seed_registry(conn, vehicles=25, seed=99)
    assert [r["vin"] for r in rows] == [r["vin"] for r in again]
    assert one(conn.execute("SELECT count(*) AS n FROM vehicles"))["n"] == 25
    assert one(conn.execute("SELECT count(*) AS n FROM stations"))["n"] == 12
    installs = conn.execute(
        "SELECT di.device_id, d.protocol, v.status FROM device_installs di JOIN devices d USING (device_id) "
        "JOIN vehicles v ON v.id = di.vehicle_id WHERE di.removed_at IS NULL ORDER BY di.device_id"
    ).fetchall()
    assert [i["device_id"] for i in installs] == [f"sim-{n:05d}" for n in range(1, 26)]
    assert [(i["protocol"], i["status"]) for i in installs] == [(r["protocol"], r["status"]) for r in rows]
    # a scenario with an unauthorized-movement fault makes that car `available`
    scenario = {"faults": [{"kind": "unauthorized_movement", "vehicle": 0, "start_s": 60}]}
    seed_registry(conn, vehicles=25, seed=1, scenario=scenario)
    assert (
        one(conn.execute("SELECT status FROM vehicles WHERE vin = %s", (rows[0]["vin"],)))["status"]
        == "available"
    )


def test_cli_refuses_a_scenario_for_more_vehicles_than_run(capsys: pytest.CaptureFixture) -> None:
    rc = fleet_main(
        ["simulate", "--vehicles", "3", "--scenario", str(FAULTS_FILE), "--memory", "--duration", "5"]
    )
    assert rc == 2
    assert "run more --vehicles" in capsys.readouterr().err


def test_cli_memory_run_writes_truth(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    scenario = tmp_path / "s.json"
    scenario.write_text(
        json.dumps({"faults": [{"kind": "low_fuel", "vehicle": 1, "start_s": 5, "duration_s": 60}]})
    )
    truth = tmp_path / "truth.jsonl"
    rc = fleet_main(
        [
            "simulate",
            "--vehicles",
            "3",
            "--scenario",
            str(scenario),
            "--memory",
            "--duration",
            "120",
            "--truth-out",
            str(truth),
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["truth_records"] == 1 and out["messages"]["status"] == 3
    rec = json.loads(truth.read_text())
    assert rec["kind"] == "low_fuel" and rec["device_id"] == "sim-00002" and rec["start"] < rec["end"]


def test_cli_live_run_against_the_broker(
    settings: Settings, listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fleetcore.settings import get_settings

    monkeypatch.setenv("FLEET_MQTT_URL", settings.mqtt_url or "")
    monkeypatch.setenv("FLEET_TOPIC_ROOT", settings.topic_root)
    get_settings.cache_clear()
    try:
        rc = fleet_main(
            [
                "simulate",
                "--vehicles",
                "2",
                "--rate",
                "2",
                "--duration",
                "2",
                "--warmup",
                "30",
                "--client-prefix",
                _prefix(),
            ]
        )
    finally:
        get_settings.cache_clear()
    assert rc == 0
    assert listener.wait_for(lambda: len(listener.by_device("status")) == 2)
    assert all(s[0] == b"online" for s in listener.by_device("status").values())
