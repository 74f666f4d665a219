"""`fleet simulate --protocol jt808`: the simulated vehicles as JT/T 808 terminals through the real gateway."""

from __future__ import annotations

import json
import threading
import uuid

import psycopg
import pytest

from fleetapp.cli import build_parser
from fleetapp.seed import seed_registry
from fleetcore.protocol import jt808 as j
from fleetcore.settings import Settings
from simulators.jt808 import Jt808Device, phone_for
from simulators.runner import Simulation, run
from tests.jt808_helpers import Listener, jt808_gateway
from tests.waiting import wait_until

pytestmark = [pytest.mark.mqtt, pytest.mark.db]


def test_terminal_identities_follow_the_gateway_rule() -> None:
    from gateways.jt808.terminals import device_id_for

    sim = Simulation(vehicles=3, rate_hz=1, seed=1, jt808_prefix="jt808-")
    assert all(isinstance(d, Jt808Device) for d in sim.devices)
    assert [d.device_id for d in sim.devices] == [device_id_for("jt808-", phone_for(i)) for i in range(3)]
    assert phone_for(0) == "013900000001" and {s.protocol for s in sim.specs} == {"json"}


def test_a_crash_is_the_collision_bit_for_a_few_reports() -> None:
    sim = Simulation(vehicles=1, rate_hz=1, seed=1, jt808_prefix="jt808-")
    dev = sim.devices[0]
    sent: list[bytes] = []
    dev.connected = True
    dev.sink = type("S", (), {"publish": lambda self, d, k, p, t, q, r: sent.append(p)})()
    veh = sim.vehicles[0]
    dev.event(veh.t, "crash", {"peak_g": 3.0})
    dev.event(veh.t, "harsh_brake", {"peak_g": 0.5})  # no JT/T 808 bit for it
    for _ in range(13):
        veh.t += 1
        dev.report(veh.snapshot())
    bits = [j.decode_location(p).alarm for p in sent]
    assert bits[:10] == [1 << 29] * 10 and set(bits[10:]) == {0}


def test_simulated_terminals_register_authenticate_and_report(
    settings: Settings, conn: psycopg.Connection
) -> None:
    s = settings.model_copy(update={"jt808_client_id": f"gw-jt-{uuid.uuid4().hex[:8]}"})
    rows = seed_registry(conn, vehicles=4, seed=1, jt808_prefix=s.jt808_device_prefix)
    listener = Listener(s)
    try:
        with jt808_gateway(s) as gw:
            stop = threading.Event()
            t = threading.Thread(
                target=run,
                args=(s,),
                kwargs=dict(
                    vehicles=4,
                    rate_hz=2.0,
                    seed=1,
                    stop=stop,
                    speedup=4.0,
                    duration_s=8.0,
                    parked_report_s=1.0,
                    jt808_gateway=("127.0.0.1", gw.port),
                ),  # fmt: skip
                daemon=True,
            )
            t.start()
            t.join(30)
            assert not t.is_alive()
            devices = {r["device_id"] for r in rows}
            wait_until(
                lambda: (
                    {tp.split("/")[-2] for tp, _, _ in listener.got if tp.endswith("/telemetry")} == devices
                ),
                timeout=10,
                message="not every terminal's reports were republished",
            )
            sample = json.loads(listener.kind("telemetry")[0])
            assert {"ts", "seq", "lat", "lon", "speed_kmh", "odometer_km", "sats", "ignition"} <= set(sample)
            assert gw.metrics.counts["reports"] >= 4 * 8
    finally:
        listener.stop()


def test_the_cli_knows_the_jt808_mode() -> None:
    args = build_parser().parse_args(["simulate", "--protocol", "jt808", "--gateway", "127.0.0.1:7611"])
    assert args.protocol == "jt808" and args.gateway == "127.0.0.1:7611"


def test_reports_kept_offline_are_uploaded_as_blind_area_batches() -> None:
    sim = Simulation(vehicles=1, rate_hz=1, seed=1, jt808_prefix="jt808-")
    dev, veh = sim.devices[0], sim.vehicles[0]
    sent: list[tuple[str, bytes]] = []
    dev.sink = type("S", (), {"publish": lambda self, d, k, p, t, q, r: sent.append((k, p))})()
    for _ in range(45):
        veh.t += 1
        dev.report(veh.snapshot())
    assert sent == [] and len(dev.buffer) == 45
    dev.connected = True
    dev.flush(veh.t)
    batches = [j.decode_batch(p) for _, p in sent]
    assert [(kind, len(reports)) for kind, reports in batches] == [(1, 20), (1, 20), (1, 5)]
    assert all(len(j.encode_frame(j.BATCH_LOCATION, p, dev.phone, 1)) < 2 * j.MAX_BODY for _, p in sent)  # type: ignore[attr-defined]
