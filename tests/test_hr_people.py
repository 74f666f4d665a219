"""HR: recruitment to hire (the new user logs in), field-level visibility and encryption of pay and identity numbers,
key rotation, certifications gating maintenance work orders, leave."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.exceptions import InvalidTag

from backoffice.hr import employees
from fleetcore.crypto import FieldCipher, generate_key, parse_keys
from fleetcore.errors import ConfigError
from tests import factories
from tests.test_orders_helpers import api, token

pytestmark = [pytest.mark.db]


def _offered(client, hr) -> str:
    """A candidate taken through every step up to the offer; returns the candidate's route."""
    r = client.post("/api/v1/hr/requisitions", headers=hr,
                    json={"department": "customer_service", "position": "Service agent", "role": "customer_service"})  # fmt: skip
    assert r.status_code == 201, r.text
    req = r.json()
    r = client.post(f"/api/v1/hr/requisitions/{req['id']}/candidates", headers=hr,
                    json={"full_name": "王芳", "email": "wang.fang@example.cn"})  # fmt: skip
    cand = r.json()
    c = f"/api/v1/hr/candidates/{cand['id']}"
    assert (
        client.post(f"{c}/written-test", json={"score": 90}, headers=hr).status_code == 409
    )  # interview first
    assert client.post(f"{c}/interview", json={"score": 82.5}, headers=hr).json()["stage"] == "interviewed"
    assert client.post(f"{c}/written-test", json={"score": 74}, headers=hr).json()["stage"] == "tested"
    assert (
        client.post(f"{c}/background-check", json={"result": "clear"}, headers=hr).json()["stage"]
        == "checked"
    )
    r = client.post(f"{c}/offer", headers=hr, json={"base_salary": "12000.00", "allowance": "800.00",
                                                   "start_date": "2026-01-05"})  # fmt: skip
    assert r.json()["stage"] == "offered", r.text
    return c


def _hire(client, hr, *, username="wang.fang", national_id="310101199001011234") -> dict:
    c = _offered(client, hr)
    r = client.post(f"{c}/hire", headers=hr, json={"username": username, "password": "first-day-pass-1",
                                                  "contract_type": "permanent", "national_id": national_id})  # fmt: skip
    assert r.status_code == 201, r.text
    return r.json()


def test_recruitment_to_hire_and_the_new_user_logs_in(settings, conn):
    with api(settings) as client:
        hr = token(client, conn, "hr")
        out = _hire(client, hr)
        assert out["candidate"]["stage"] == "hired" and out["user"]["role"] == "customer_service"
        emp = out["employee"]
        assert (
            emp["salary"] == {"base": "12000.00", "allowance": "800.00"} and emp["hire_date"] == "2026-01-05"
        )
        r = client.post("/api/v1/auth/token", data={"username": "wang.fang", "password": "first-day-pass-1"})
        assert r.status_code == 200
        me = client.get(
            "/api/v1/auth/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"}
        ).json()
        assert me["username"] == "wang.fang" and me["department"] == "customer_service"
        reqs = client.get("/api/v1/hr/requisitions", headers=hr).json()
        assert reqs[0]["status"] == "filled"  # headcount 1 reached
        # A failed interview rejects; the same identity number twice is refused.
        r = client.post("/api/v1/hr/requisitions", headers=hr,
                        json={"department": "operations", "position": "Dispatcher", "role": "dispatcher"})  # fmt: skip
        cand = client.post(f"/api/v1/hr/requisitions/{r.json()['id']}/candidates", headers=hr,
                           json={"full_name": "Max Muster", "email": "max@example.com"}).json()  # fmt: skip
        r = client.post(f"/api/v1/hr/candidates/{cand['id']}/interview", json={"score": 41}, headers=hr)
        assert r.json()["stage"] == "rejected"
        bad = _hire_duplicate(client, hr)
        assert bad.status_code == 409 and "identity number" in bad.json()["error"]["message"]
    actions = {r["action"] for r in conn.execute("SELECT action FROM audit_log")}
    assert {"requisition.create", "candidate.interview", "candidate.offer", "candidate.hire", "user.create",
            "employee.create", "requisition.filled"} <= actions  # fmt: skip
    audit_text = str(conn.execute("SELECT json_agg(a) AS a FROM audit_log a").fetchone()["a"])
    assert "12000" not in audit_text and "310101199001011234" not in audit_text  # no personal values audited


def _hire_duplicate(client, hr):
    c = _offered(client, hr)
    return client.post(f"{c}/hire", headers=hr, json={"username": "second.hire", "password": "first-day-pass-1",
                       "contract_type": "permanent", "national_id": "310101199001011234"})  # fmt: skip


def test_pay_and_identity_numbers_only_for_hr_and_admin_and_encrypted_at_rest(settings, conn):
    with api(settings) as client:
        hr = token(client, conn, "hr")
        emp = _hire(client, hr)["employee"]
        for role in ("admin", "hr"):
            got = client.get(f"/api/v1/hr/employees/{emp['id']}", headers=token(client, conn, role)).json()
            assert got["salary"]["base"] == "12000.00" and got["national_id"] == "310101199001011234", role
        for role in ("dispatcher", "customer_service", "finance", "technician"):
            h = token(client, conn, role)
            got = client.get(f"/api/v1/hr/employees/{emp['id']}", headers=h).json()
            assert got["full_name"] == "王芳" and got["salary"] is None and got["national_id"] is None, role
            listed = client.get("/api/v1/hr/employees", headers=h).json()
            assert all(e["salary"] is None and e["national_id"] is None for e in listed), role
            assert client.put(f"/api/v1/hr/employees/{emp['id']}/pay", json={"base_salary": "1.00"},
                              headers=h).status_code == 403  # fmt: skip
    row = conn.execute("SELECT salary_enc, national_id_enc, national_id_bidx FROM employees WHERE id = %s",
                       (emp["id"],)).fetchone()  # fmt: skip
    assert "12000" not in row["salary_enc"] and "3101011990" not in row["national_id_enc"]
    cipher = FieldCipher.from_settings(settings)
    assert (
        employees.find_by_national_id(conn, national_id="3101 0119 9001 011234", cipher=cipher)["id"]
        == emp["id"]
    )
    with pytest.raises(InvalidTag):  # bound to its row: another employee's context does not decrypt it
        cipher.decrypt(row["salary_enc"], context=employees.salary_context(emp["id"] + 1))
    # Rotation: a new current key; old values still read, re-encrypted by rotate_keys, then the old key can go.
    new_key = parse_keys(f"k2:{generate_key()}")[0]
    both = FieldCipher(keys=(new_key, *cipher.keys), index_key=cipher.index_key)
    assert both.needs_rotation(row["salary_enc"])
    assert employees.rotate_keys(conn, cipher=both, actor=None) == 1
    assert employees.rotate_keys(conn, cipher=both, actor=None) == 0  # nothing left to do
    new_only = FieldCipher(keys=(new_key,), index_key=cipher.index_key)
    e = employees.get_or_raise(conn, employee_id=emp["id"])
    assert employees.pay(e, cipher=new_only)["base"] == 12000
    assert employees.find_by_national_id(conn, national_id="310101199001011234", cipher=new_only)
    with pytest.raises(ConfigError):  # the retired key no longer reads what it wrote
        cipher.decrypt(new_only.encrypt("x", context="c"), context="c")


def test_technician_needs_a_valid_certification_to_close_that_kind_of_work_order(settings, conn):
    car = factories.vehicle(conn)
    with api(settings) as client:
        hr = token(client, conn, "hr")
        tech_user = factories.user(conn, role="technician")
        tech = {"Authorization": "Bearer " + client.post("/api/v1/auth/token", data={
            "username": tech_user["username"], "password": tech_user["password"]}).json()["access_token"]}  # fmt: skip
        r = client.post("/api/v1/hr/training/courses", headers=hr, json={
            "code": "ev_hv_safety", "title": "High-voltage safety", "certifies": "ev_hv", "validity_months": 24})  # fmt: skip
        assert r.status_code == 201, r.text
        r = client.put("/api/v1/hr/training/requirements/repair", json={"certification": "ev_hv"}, headers=hr)
        assert r.status_code == 200
        wo = client.post(f"/api/v1/fleet/vehicles/{car['vin']}/maintenance", headers=tech, json={
            "work_order": "WO-1", "kind": "repair", "description": "HV battery contactor"})  # fmt: skip
        assert wo.status_code == 201, wo.text
        r = client.post(f"/api/v1/fleet/maintenance/{wo.json()['id']}/close", json={}, headers=tech)
        assert r.status_code == 403 and r.json()["error"]["details"]["certification"] == "ev_hv"
        # An expired certification does not count either.
        r = client.post("/api/v1/hr/training/certifications", headers=hr, json={
            "username": tech_user["username"], "code": "ev_hv", "issued_on": "2020-01-01", "expires_on": "2022-01-01"})  # fmt: skip
        assert r.status_code == 201
        assert (
            client.post(
                f"/api/v1/fleet/maintenance/{wo.json()['id']}/close", json={}, headers=tech
            ).status_code
            == 403
        )
        # The course: a session in the past, attended and passed → certified for 24 months from its end.
        start = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
        s = client.post("/api/v1/hr/training/sessions", headers=hr, json={
            "course_id": 1, "starts_at": start.isoformat(), "ends_at": (start + dt.timedelta(hours=8)).isoformat()}).json()  # fmt: skip
        r = client.post(f"/api/v1/hr/training/sessions/{s['id']}/attendance", headers=hr,
                        json={"username": tech_user["username"], "attended": True, "passed": True, "score": 88})  # fmt: skip
        cert = r.json()["certification"]
        assert (
            cert["code"] == "ev_hv"
            and cert["expires_on"]
            == (start + dt.timedelta(hours=8)).date().replace(year=start.year + 2).isoformat()
        )
        r = client.post(f"/api/v1/fleet/maintenance/{wo.json()['id']}/close", json={}, headers=tech)
        assert r.status_code == 200 and r.json()["closed_by"] == tech_user["username"], r.text
        # Kinds without a requirement stay open to every technician; admins are not gated.
        wo2 = client.post(f"/api/v1/fleet/vehicles/{car['vin']}/maintenance", headers=tech, json={
            "work_order": "WO-2", "kind": "tyres", "description": "winter tyres"}).json()  # fmt: skip
        assert (
            client.post(f"/api/v1/fleet/maintenance/{wo2['id']}/close", json={}, headers=tech).status_code
            == 200
        )


def test_leave_overlap_balance_and_attendance(settings, conn):
    with api(settings) as client:
        hr = token(client, conn, "hr")
        emp = _hire(client, hr)["employee"]
        base = f"/api/v1/hr/employees/{emp['id']}"
        r = client.post(f"{base}/leave", headers=hr, json={"kind": "annual", "start_date": "2026-03-02",
                                                           "end_date": "2026-03-06"})  # fmt: skip
        assert r.status_code == 201 and r.json()["days"] == "5.0"
        r = client.post(f"{base}/leave", headers=hr, json={"kind": "sick", "start_date": "2026-03-05",
                                                           "end_date": "2026-03-09"})  # fmt: skip
        assert r.status_code == 409  # overlaps the annual leave (refused by the exclusion constraint)
        r = client.post(f"{base}/leave", headers=hr, json={"kind": "annual", "start_date": "2026-04-01",
                                                           "end_date": "2026-04-10"})  # fmt: skip
        assert r.status_code == 409 and "exceed" in r.json()["error"]["message"]  # 8 more days > 5 left of 10
        bal = client.get(f"{base}/leave-balance", params={"year": 2026}, headers=hr).json()
        assert bal["remaining"] == "5.0"
        r = client.put(f"{base}/attendance", headers=hr, json={"days": [
            {"day": "2026-03-09", "status": "present", "overtime_hours": "2.5"},
            {"day": "2026-03-10", "status": "late"}]})  # fmt: skip
        assert r.json() == {"days": {"present": 1, "late": 1}, "overtime_hours": "2.5"}
