"""Device identity at the real broker: per-device credentials from the API, Mosquitto's files from the registry.

A device may publish only under its own id and subscribe to nothing; a forged publish is refused by the broker
(PUBACK 0x87) and never reaches ingest, which still stores the device's own data; a revoked or rotated-away secret
can no longer connect; anonymous clients are refused.
"""

from __future__ import annotations

import contextlib
import shutil
import ssl
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from backoffice.broker import service as accounts
from fleetapp.broker import sync_once
from fleetcore.contract import topic_for
from fleetcore.db import connect
from fleetcore.mqtt import MqttConnection
from fleetcore.settings import MqttUrl
from tests import factories
from tests.ingest_helpers import Mosquitto, count, ingest_worker, recent_ms, telemetry_json
from tests.test_orders_helpers import api, token
from tests.waiting import wait_until

pytestmark = [pytest.mark.db, pytest.mark.mqtt]

NOT_AUTHORIZED = 0x87  # MQTT 5 reason code 135


class Device:
    """A paho MQTT 5 client that records CONNACK, PUBACK and SUBACK reason codes."""

    def __init__(self, port: int, username: str | None, password: str | None) -> None:
        self.port = port
        self.connack: int | None = None
        self.pubacks: dict[int, int] = {}
        self.subacks: dict[int, list[int]] = {}
        self.received: list[str] = []
        self.done = threading.Condition()
        self.c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
        )
        if username is not None:
            self.c.username_pw_set(username, password)
        self.c.on_connect = self._on_connect
        self.c.on_publish = self._on_publish
        self.c.on_subscribe = self._on_subscribe
        self.c.on_message = lambda client, userdata, msg: self.received.append(msg.topic)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        with self.done:
            self.connack = reason_code.value
            self.done.notify_all()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:  # noqa: ANN001
        with self.done:
            self.pubacks[mid] = reason_code.value
            self.done.notify_all()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:  # noqa: ANN001
        with self.done:
            self.subacks[mid] = [rc.value for rc in reason_codes]
            self.done.notify_all()

    def connect(self) -> int:
        """The CONNACK reason code (0 = accepted)."""
        self.c.connect("127.0.0.1", self.port, keepalive=10)
        self.c.loop_start()
        with self.done:
            assert self.done.wait_for(lambda: self.connack is not None, 10), "no CONNACK"
        assert self.connack is not None
        return self.connack

    def publish(self, topic: str, payload: bytes) -> int:
        """Publish at QoS 1; the PUBACK reason code (0 = accepted, 0x87 = not authorized)."""
        mid = self.c.publish(topic, payload, qos=1).mid
        with self.done:
            assert self.done.wait_for(lambda: mid in self.pubacks, 10), "no PUBACK"
        return self.pubacks[mid]

    def subscribe(self, topic: str) -> list[int]:
        _, mid = self.c.subscribe(topic, qos=1)
        assert mid is not None
        with self.done:
            assert self.done.wait_for(lambda: mid in self.subacks, 10), "no SUBACK"
        return self.subacks[mid]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def _connack(port: int, username: str | None, password: str | None) -> int:
    d = Device(port, username, password)
    try:
        return d.connect()
    finally:
        d.close()


@pytest.fixture
def secured_broker() -> Iterator[Mosquitto]:
    """A private Mosquitto with no anonymous access (started by the test once its files exist)."""
    d = Path(tempfile.mkdtemp(prefix="fleet-mosq-auth-"))
    m = Mosquitto(d, authenticated=True)
    try:
        yield m
    finally:
        m.stop()
        shutil.rmtree(d, ignore_errors=True)


def test_devices_publish_only_as_themselves_and_revoked_secrets_cannot_connect(
    settings, conn, secured_broker: Mosquitto
) -> None:
    root = settings.topic_root
    a, b, third = factories.vehicle(conn), factories.vehicle(conn), factories.vehicle(conn)
    with api(settings) as client:
        tech = token(client, conn, "technician")
        admin = token(client, conn, "admin")
        issued = {}
        for v in (a, b, third):
            r = client.post(f"/api/v1/fleet/devices/{v['device_id']}/credentials", headers=tech)
            assert r.status_code == 201, r.text
            issued[v["device_id"]] = r.json()["secret"]
        # the secret is shown once: never again, and never stored in plain text
        again = client.post(f"/api/v1/fleet/devices/{a['device_id']}/credentials", headers=tech)
        assert again.status_code == 409
        meta = client.get(f"/api/v1/fleet/devices/{a['device_id']}/credentials", headers=tech).json()
        assert "secret" not in meta and meta["active"] is True
        r = client.post(
            "/api/v1/broker/service-accounts", json={"username": "ingest", "role": "ingest"}, headers=admin
        )
        assert r.status_code == 201, r.text
        ingest_secret = r.json()["secret"]
        # technicians provision devices, not services
        assert (
            client.post(
                "/api/v1/broker/service-accounts", json={"username": "x", "role": "monitor"}, headers=tech
            ).status_code
            == 403
        )
        # and a device route never reaches a service account
        assert client.delete("/api/v1/fleet/devices/ingest/credentials", headers=tech).status_code == 404

    dump = "\n".join(str(r) for r in conn.execute("SELECT * FROM broker_accounts").fetchall())
    dump += "\n".join(str(r) for r in conn.execute("SELECT * FROM audit_log").fetchall())
    assert not any(s in dump for s in (*issued.values(), ingest_secret)), "a secret was stored in plain text"

    broker = secured_broker
    paths = {"topic_root": root, "passwd": broker.passwd_file, "acl": broker.acl_file, "pid_file": None}
    with connect(settings.database_url) as c:
        assert sync_once(c, **paths) is True
        assert sync_once(c, **paths) is False  # unchanged: no rewrite, no reload
    broker.start()

    assert _connack(broker.port, None, None) != 0, "anonymous access must be refused"
    assert _connack(broker.port, a["device_id"], "wrong-secret") != 0

    ingest = settings.model_copy(
        update={"mqtt_url": f"mqtt://ingest:{ingest_secret}@127.0.0.1:{broker.port}", "ingest_batch_ms": 20}
    )
    with ingest_worker(ingest):
        dev = Device(broker.port, a["device_id"], issued[a["device_id"]])
        assert dev.connect() == 0
        try:
            own = dev.publish(topic_for(root, a["device_id"], "telemetry"), telemetry_json(1, recent_ms()))
            forged = dev.publish(topic_for(root, b["device_id"], "telemetry"), telemetry_json(1, recent_ms()))
            crash = dev.publish(
                topic_for(root, b["device_id"], "event"), b'{"ts": %d, "type": "crash"}' % recent_ms()
            )
            # Mosquitto 2.0 grants the SUBSCRIBE but checks read rights per message: nothing is delivered.
            dev.subscribe(f"{root}/devices/#")
            other = Device(broker.port, third["device_id"], issued[third["device_id"]])
            assert other.connect() == 0
            assert (
                other.publish(
                    topic_for(root, third["device_id"], "telemetry"), telemetry_json(1, recent_ms())
                )
                == 0
            )
            other.close()
            for v in (a, third):
                wait_until(
                    lambda v=v: count(  # type: ignore[misc]
                        settings.database_url, "SELECT count(*) FROM readings WHERE vehicle_id = %s", v["id"]
                    ),
                    timeout=15,
                    message="ingest did not store a device's own sample",
                )
        finally:
            dev.close()
        assert own == 0
        assert forged == NOT_AUTHORIZED and crash == NOT_AUTHORIZED
        # C's sample went through the broker (ingest stored it), and none of it reached device A
        assert dev.received == []
    # the forged messages never reached ingest: nothing stored, rejected or quarantined for B
    assert count(settings.database_url, "SELECT count(*) FROM readings WHERE vehicle_id = %s", b["id"]) == 0
    assert (
        count(settings.database_url, "SELECT count(*) FROM device_events WHERE vehicle_id = %s", b["id"]) == 0
    )

    with api(settings) as client:
        assert (
            client.delete(f"/api/v1/fleet/devices/{a['device_id']}/credentials", headers=tech).status_code
            == 200
        )
        r = client.post(f"/api/v1/fleet/devices/{b['device_id']}/credentials/rotate", headers=tech)
        assert r.status_code == 200
        b_new = r.json()["secret"]
    with connect(settings.database_url) as c:
        assert sync_once(c, **paths) is True
    broker.reload()
    wait_until(
        lambda: _connack(broker.port, a["device_id"], issued[a["device_id"]]) != 0,
        timeout=10,
        message="a revoked credential still connects",
    )
    wait_until(lambda: _connack(broker.port, b["device_id"], issued[b["device_id"]]) != 0, timeout=10)
    assert _connack(broker.port, b["device_id"], b_new) == 0
    actions = [r["action"] for r in conn.execute("SELECT action FROM audit_log ORDER BY id").fetchall()]
    assert actions == [
        *["broker_account.issue"] * 3,
        "broker_account.create",
        "broker_account.revoke",
        "broker_account.rotate",
    ]


def test_stored_hashes_are_what_mosquitto_checks(conn) -> None:
    """The $7$ line is PBKDF2-SHA512 over the printable salt: verify() and the rendered file agree."""
    v = factories.vehicle(conn)
    secret, _ = accounts.issue_device(conn, device_id=v["device_id"], actor={"username": "t"})
    assert accounts.verify(conn, username=v["device_id"], secret=secret)
    assert not accounts.verify(conn, username=v["device_id"], secret=secret + "x")
    line = next(x for x in accounts.render_passwd(conn).splitlines() if x.startswith(v["device_id"] + ":"))
    assert line.split(":", 1)[1].startswith("$7$101$")
    acl = accounts.render_acl(conn, topic_root="fleet/v1")
    assert "pattern write fleet/v1/devices/%u/#" in acl and "read" not in acl.split("\n\n")[0]


def _run(*cmd: str, cwd: Path) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def tls_broker() -> Iterator[tuple[Mosquitto, Path]]:
    """A private Mosquitto with no anonymous access and a TLS-only listener, its certificate from a test CA."""
    d = Path(tempfile.mkdtemp(prefix="fleet-mosq-tls-"))
    _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
         "-days", "2", "-subj", "/CN=fleet test CA", cwd=d)  # fmt: skip
    _run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
         "-subj", "/CN=127.0.0.1", cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "server.crt", "-days", "2", "-extfile", "san.ext", cwd=d)  # fmt: skip
    m = Mosquitto(d, authenticated=True, tls=(d / "ca.crt", d / "server.crt", d / "server.key"))
    with contextlib.suppress(LookupError, OSError):  # the broker drops to its own user before reading the key
        for f in d.iterdir():
            shutil.chown(f, "mosquitto")
    try:
        yield m, d / "ca.crt"
    finally:
        m.stop()
        shutil.rmtree(d, ignore_errors=True)


def test_services_and_devices_connect_over_tls_with_the_ca_and_not_without(
    settings, conn, tls_broker: tuple[Mosquitto, Path]
) -> None:
    broker, ca = tls_broker
    v = factories.vehicle(conn)
    secret, _ = accounts.issue_device(conn, device_id=v["device_id"], actor={"username": "t"})
    ingest_secret, _ = accounts.create_service(
        conn, username="ingest", role="ingest", actor={"username": "t"}
    )
    with connect(settings.database_url) as c:
        sync_once(
            c, topic_root=settings.topic_root, passwd=broker.passwd_file, acl=broker.acl_file, pid_file=None
        )
    broker.start()
    ingest = settings.model_copy(
        update={
            "mqtt_url": f"mqtts://ingest:{ingest_secret}@127.0.0.1:{broker.port}",
            "mqtt_ca_file": str(ca),
        }
    )
    device = MqttUrl(f"mqtts://{v['device_id']}:{secret}@127.0.0.1:{broker.port}", ca_file=str(ca))
    with ingest_worker(ingest):
        conn_ = MqttConnection(device, f"t-{uuid.uuid4().hex[:6]}")
        conn_.start()
        try:
            assert conn_.connected.is_set()
            topic = topic_for(settings.topic_root, v["device_id"], "telemetry")
            assert conn_.publish(topic, telemetry_json(1, recent_ms()))
        finally:
            conn_.stop()
        wait_until(
            lambda: count(
                settings.database_url, "SELECT count(*) FROM readings WHERE vehicle_id = %s", v["id"]
            ),
            timeout=15,
        )
    # Without the CA that signed the broker's certificate, the client refuses the broker.
    bare = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    MqttUrl(f"mqtts://{v['device_id']}:{secret}@127.0.0.1:{broker.port}").configure(bare)
    with pytest.raises(ssl.SSLCertVerificationError):
        bare.connect("127.0.0.1", broker.port)
