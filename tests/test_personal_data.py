"""Personal data: identifiers encrypted at rest (a dump holds none in plain text), masked for staff without a need,
absent from the audit log, exported on request and erased without losing the financial records."""

from __future__ import annotations

import subprocess

import pytest

from fleetcore import crypto
from fleetcore.db import one
from fleetcore.errors import ConfigError
from fleetcore.settings import Settings
from tests import factories
from tests.test_orders_helpers import api, create_customer, create_order, customer_body, future, token

pytestmark = [pytest.mark.db]
ID_NO, LICENCE, PHONE = "L01X00T47", "B072RRE2I55", "+49 30 1234567"


def _raw(conn, customer_id: int) -> dict:  # noqa: ANN001
    return one(conn.execute("SELECT * FROM customers WHERE id = %s", (customer_id,)))


def test_identifiers_are_encrypted_at_rest_masked_by_role_and_looked_up_exactly(settings, conn) -> None:
    with api(settings) as client:
        cs, disp = token(client, conn, "customer_service"), token(client, conn, "dispatcher")
        fin, admin = token(client, conn, "finance"), token(client, conn, "admin")
        c = create_customer(client, cs, id_document_number=ID_NO, licence_number=LICENCE, phone=PHONE)
        raw = _raw(conn, c["id"])
        for field, plain in (("id_document_number", ID_NO), ("licence_number", LICENCE), ("phone", PHONE)):
            assert raw[field].startswith("v1:") and plain not in raw[field]
        # who sees what
        for who in (cs, admin):
            got = client.get(f"/api/v1/customers/{c['id']}", headers=who).json()
            assert (got["id_document_number"], got["licence_number"], got["phone"]) == (ID_NO, LICENCE, PHONE)
        for who in (disp, fin):
            got = client.get(f"/api/v1/customers/{c['id']}", headers=who).json()
            assert got["licence_number"].endswith(LICENCE[-3:]) and LICENCE not in got["licence_number"]
            assert (
                ID_NO not in got["id_document_number"] and got["phone"] == PHONE
            )  # dispatchers call customers
            listed = client.get("/api/v1/customers", headers=who).json()["items"]
            assert all(LICENCE not in str(x) and ID_NO not in str(x) for x in listed)
        # exact lookups through the blind indexes, whatever the formatting
        hit = client.get("/api/v1/customers", headers=cs, params={"licence_number": "b072-rre2i55"}).json()
        assert [x["id"] for x in hit["items"]] == [c["id"]]
        hit = client.get("/api/v1/customers", headers=cs, params={"q": "+4930 1234 567"}).json()
        assert [x["id"] for x in hit["items"]] == [c["id"]]
        assert (
            client.get("/api/v1/customers", headers=cs, params={"licence_number": "B0"}).json()["total"] == 0
        )


def test_the_audit_log_holds_field_names_not_personal_values(settings, conn) -> None:
    with api(settings) as client:
        cs = token(client, conn, "customer_service")
        c = create_customer(client, cs, id_document_number=ID_NO, licence_number=LICENCE, phone=PHONE)
        r = client.patch(
            f"/api/v1/customers/{c['id']}",
            headers=cs,
            json={"licence_number": "B999ZZZ111", "address": "Neue Str. 1"},
        )
        assert r.status_code == 200
    rows = conn.execute("SELECT action, before, after FROM audit_log WHERE entity = 'customers'").fetchall()
    assert [r["action"] for r in rows] == ["customer.create", "customer.update"]
    text = str(rows)
    for value in (ID_NO, LICENCE, "B999ZZZ111", PHONE, "Mustermann", "Neue Str", "1985-08-12"):
        assert value not in text, value
    assert rows[1]["after"] == {"fields": ["address", "licence_number"]}


def test_a_database_dump_holds_no_identity_or_licence_number(settings, conn, db_url) -> None:
    with api(settings) as client:
        cs = token(client, conn, "customer_service")
        create_customer(client, cs, id_document_number=ID_NO, licence_number=LICENCE, phone=PHONE)
    dump = subprocess.run(
        ["pg_dump", "--format=plain", f"--dbname={db_url}"], capture_output=True, check=True, timeout=120
    ).stdout
    assert b"customer.create" in dump  # the dump has the data: the audit log's entry is there
    for value in (ID_NO, LICENCE, PHONE, PHONE.replace(" ", "")):
        assert value.encode() not in dump, value


def test_export_then_erase_keeps_orders_and_invoices(settings, conn) -> None:
    s = factories.station(conn)
    factories.vehicle(conn, station_code=s["code"])
    with api(settings) as client:
        cs, admin = token(client, conn, "customer_service"), token(client, conn, "admin")
        c = create_customer(client, cs, email="erika@example.com", licence_number=LICENCE)
        o = create_order(
            client, cs, customer_id=c["id"], pickup=s["code"], pickup_at=future(30), return_at=future(60)
        )
        exported = client.get(f"/api/v1/customers/{c['id']}/export", headers=cs)
        assert exported.status_code == 200
        body = exported.json()
        assert body["customer"]["licence_number"] == LICENCE and [x["id"] for x in body["orders"]] == [
            o["id"]
        ]
        assert [a["action"] for a in body["audit"]] == ["customer.create"]
        assert client.post(f"/api/v1/customers/{c['id']}/erase", headers=cs).status_code == 403  # admin only
        r = client.post(f"/api/v1/customers/{c['id']}/erase", headers=admin)
        assert r.status_code == 200
        erased = r.json()
        assert (
            erased["first_name"] == "Erased" and erased["email"] is None and erased["licence_number"] is None
        )
        assert erased["erased_at"]
        assert client.post(f"/api/v1/customers/{c['id']}/erase", headers=admin).status_code == 409
        # the order is still there, pointing at the anonymised customer
        assert client.get(f"/api/v1/orders/{o['id']}", headers=cs).json()["customer_id"] == c["id"]
    raw = str(_raw(conn, c["id"])) + str(conn.execute("SELECT * FROM audit_log").fetchall())
    for value in ("erika@example.com", LICENCE, "Mustermann", "Erika"):
        assert value not in raw, (value, raw[max(raw.find(value) - 400, 0) : raw.find(value) + 100])
    assert _raw(conn, c["id"])["licence_bidx"] is None


def test_keys_rotate_without_losing_a_value(settings, conn) -> None:
    old, new = f"a:{crypto.generate_key()}", f"b:{crypto.generate_key()}"
    crypto.configure(settings.model_copy(update={"data_keys": old}))
    try:
        from backoffice.customers import service as customers

        c = customers.create(conn, data=customer_body(licence_number=LICENCE), actor={"username": "t"})
        assert _raw(conn, c["id"])["licence_number"].startswith("v1:a:")
        crypto.configure(settings.model_copy(update={"data_keys": f"{new},{old}"}))
        assert (
            customers.get_or_raise(conn, customer_id=c["id"])["licence_number"] == LICENCE
        )  # old key listed
        assert customers.rotate_keys(conn) == 1 and customers.rotate_keys(conn) == 0
        assert _raw(conn, c["id"])["licence_number"].startswith("v1:b:")
        crypto.configure(settings.model_copy(update={"data_keys": new}))  # the old key can go now
        assert customers.get_or_raise(conn, customer_id=c["id"])["licence_number"] == LICENCE
        crypto.configure(settings.model_copy(update={"data_keys": old}))
        with pytest.raises(ConfigError, match="no longer lists"):
            customers.get(conn, customer_id=c["id"])
    finally:
        crypto.configure(settings)


def test_production_requires_keys_outside_the_database() -> None:
    s = Settings(environment="production", secret_key="prod-secret-0123456789-abcdefghijklmnop")
    with pytest.raises(ConfigError, match="FLEET_DATA_KEYS"):
        crypto.FieldCipher.from_settings(s)
    with pytest.raises(ConfigError, match="32 bytes"):
        crypto.parse_keys("k1:c2hvcnQ")
