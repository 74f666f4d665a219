"""Stable client ids for interchangeable workers (`{slot}`): a restarted worker resumes the session of the one that
stopped, so the share of the stream its broker queued for that session is drained, not stranded."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetcore.slots import SlotLease
from ingest.consumer import SLOT_NAMESPACE
from tests.ingest_helpers import Mosquitto, mosquitto, publish_raw, wait_until
from tests.test_ingest_faults import _assert_exactly_once, _devices, _readings, _stream


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    with mosquitto() as m:
        yield m


def test_leases_take_the_lowest_free_slot_and_free_it_on_release(db_url: str) -> None:
    stop = threading.Event()
    template = f"ingest-{uuid.uuid4().hex[:6]}-{{slot}}"
    a, b = (
        SlotLease(db_url, template, stop, namespace=SLOT_NAMESPACE),
        SlotLease(db_url, template, stop, namespace=SLOT_NAMESPACE),
    )
    assert (a.claim(), b.claim()) == (template.format(slot=1), template.format(slot=2))
    a.release()
    c = SlotLease(db_url, template, stop, namespace=SLOT_NAMESPACE)
    assert c.claim() == template.format(slot=1)  # the freed slot, not a new one
    other = SlotLease(db_url, "other-{slot}", stop, namespace=SLOT_NAMESPACE)
    assert other.claim() == "other-1"  # templates do not share slots
    for lease in (b, c, other):
        lease.release()


def _settled(url: str) -> int:
    """Stored readings once the count has stopped moving for 2 s."""
    seen = {"n": -1, "since": time.monotonic()}

    def still() -> bool:
        now = _readings(url)
        if now != seen["n"]:
            seen["n"], seen["since"] = now, time.monotonic()
        return time.monotonic() - seen["since"] >= 2.0

    wait_until(still, timeout=120, interval=0.1, message="the readings count never settled")
    return int(seen["n"])


def _worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as f:
        return subprocess.Popen([sys.executable, "-m", "fleetapp.cli", "ingest"], env=env, stdout=f, stderr=f)


def _client_id(log: Path) -> str:
    wait_until(lambda: b"event=subscribed" in log.read_bytes(), timeout=20, message=log.read_text)
    m = re.search(r"event=slot_claimed slot=\d+ client_id=(\S+)", log.read_text())
    assert m, log.read_text()
    return m[1]


@pytest.mark.slow
def test_a_restarted_worker_resumes_the_stopped_workers_session(
    db_url: str, broker: Mosquitto, tmp_path: Path
) -> None:
    root = f"test-{uuid.uuid4().hex[:10]}/fleet/v1"
    total = 6000
    messages = _stream(root, _devices(db_url, 100), total)
    template = f"ingest-{uuid.uuid4().hex[:6]}-{{slot}}"
    env = {
        **os.environ,
        "FLEET_DATABASE_URL": db_url,
        "FLEET_MQTT_URL": broker.url,
        "FLEET_TOPIC_ROOT": root,
        "FLEET_INGEST_CLIENT_ID": template,
        "FLEET_INGEST_SHARE_GROUP": "ingest",
        "FLEET_ENVIRONMENT": "test",
    }
    logs = [tmp_path / f"w{i}.log" for i in range(3)]
    a = _worker(env, logs[0])
    b = _worker(env, logs[1])
    procs = [a, b]
    try:
        ids = {_client_id(logs[0]), _client_id(logs[1])}
        assert ids == {template.format(slot=1), template.format(slot=2)}
        a.send_signal(signal.SIGTERM)  # e.g. its container is re-created
        assert a.wait(20) == 0
        # the stopped worker's session is still a member of the share group: the broker queues part of the
        # stream for it, which the running worker never sees
        publish_raw(broker.port, messages)
        stranded = total - _settled(db_url)
        assert stranded > total // 4
        c = _worker(env, logs[2])  # the replacement takes the freed slot, i.e. the stopped worker's session
        procs.append(c)
        assert _client_id(logs[2]) == _client_id(logs[0])
        wait_until(
            lambda: _readings(db_url) >= total, timeout=30, message=lambda: (_readings(db_url), stranded)
        )
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(20)
    _assert_exactly_once(db_url, total)


def _session_present(broker: Mosquitto, client_id: str) -> bool:
    """Whether the broker still holds a session for client_id (connecting with clean_start=False tells)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    seen: list[bool] = []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.on_connect = lambda cl, ud, flags, rc, props: seen.append(bool(flags.session_present))
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600  # keep it as it was: this probe must not end the session itself
    c.connect("127.0.0.1", broker.port, clean_start=False, properties=props)
    c.loop_start()
    assert wait_until(lambda: seen, timeout=10)
    c.disconnect()
    c.loop_stop()
    return seen[0]


@pytest.mark.slow
def test_retire_drains_a_removed_workers_session_and_ends_it(db_url: str, broker: Mosquitto) -> None:
    from ingest.consumer import run
    from tests.ingest_helpers import ingest_settings, ingest_worker

    root = f"test-{uuid.uuid4().hex[:10]}/fleet/v1"
    total = 9000
    messages = _stream(root, _devices(db_url, 100), total)
    third = total // 3
    stay = ingest_settings(db_url, broker, root, ingest_share_group="ingest")
    gone = ingest_settings(db_url, broker, root, ingest_share_group="ingest")
    with ingest_worker(stay):
        with ingest_worker(gone):
            publish_raw(broker.port, messages[:third])
            assert wait_until(lambda: _readings(db_url) >= third, timeout=30)
        # `gone` is scaled away; its session stays in the group and the broker queues part of the stream for it
        publish_raw(broker.port, messages[third : 2 * third])
        stranded = 2 * third - _settled(db_url)
        assert stranded > third // 4
        result = run(gone, threading.Event(), retire=True)  # returns by itself once the queue is drained
        assert result["client_id"] == gone.ingest_client_id and result["messages"] >= stranded
        assert _readings(db_url) == 2 * third
        assert not _session_present(broker, gone.ingest_client_id)
        # with the session gone, everything published now goes to the worker that stayed
        publish_raw(broker.port, messages[2 * third :])
        wait_until(lambda: _readings(db_url) >= total, timeout=30, message=lambda: _readings(db_url))
    _assert_exactly_once(db_url, total)


def test_retire_cli_needs_a_real_client_id_not_the_template(db_url: str) -> None:
    fleet = str(Path(sys.executable).parent / "fleet")
    env = {
        **os.environ,
        "FLEET_DATABASE_URL": db_url,
        "FLEET_MQTT_URL": "mqtt://127.0.0.1:1883",
        "FLEET_INGEST_CLIENT_ID": "fleet-ingest-{slot}",
        "FLEET_ENVIRONMENT": "test",
    }
    r = subprocess.run([fleet, "ingest", "retire"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 2
    assert "--client-id" in r.stderr and "fleet-ingest-{slot}" in r.stderr
