"""The broker's `gateway` service role: the database accepts it and the ACL grants exactly its rights."""

from __future__ import annotations

import psycopg
import pytest

from backoffice.broker import service as accounts
from fleetcore.errors import Invalid

pytestmark = pytest.mark.db
ACTOR = {"username": "t"}


def test_a_gateway_account_writes_device_topics_and_reads_the_teltonika_topic(
    conn: psycopg.Connection,
) -> None:
    _, row = accounts.create_service(conn, username="gw-1", role="gateway", actor=ACTOR)
    assert row["role"] == "gateway"
    acl = accounts.render_acl(conn, topic_root="fleet/v1", teltonika_topic="teltonika/+/data")
    block = acl.split("user gw-1\n", 1)[1].split("\n\n")[0].splitlines()
    assert block == ["topic write fleet/v1/devices/#", "topic read teltonika/+/data"]
    # a tracker (username = its IMEI) may publish on its own Teltonika level only; devices still read nothing
    head = acl.split("\n\n")[0]
    assert "pattern write teltonika/%u/data" in head and "read" not in head


def test_the_database_refuses_an_unknown_role(conn: psycopg.Connection) -> None:
    with pytest.raises(Invalid):
        accounts.create_service(conn, username="x", role="admin", actor=ACTOR)
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            """INSERT INTO broker_accounts (username, kind, role, salt, iterations, hash, created_by)
               VALUES ('y', 'service', 'root', 's', 1, '\\x00', 't')"""
        )
