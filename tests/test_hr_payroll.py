"""Payroll: a China-profile month and the next two (cumulative income-tax withholding), totals equal to hand-computed
values, idempotent per month, posted to finance's ledger when it exists; payslips only for hr and admin."""

from __future__ import annotations

from decimal import Decimal

import pytest

from backoffice.payroll import ledger
from backoffice.payroll.rules import Rules, cumulative_tax
from tests import factories
from tests.test_hr_reviews import employee
from tests.test_orders_helpers import api, token

pytestmark = [pytest.mark.db]
D = Decimal


def test_withholding_table_edges():
    brackets = Rules.model_validate(CN_RULES).iit_brackets
    assert cumulative_tax(D("-100"), brackets) == D("0.00")
    assert cumulative_tax(D("36000"), brackets) == D("1080.00")  # 3 %
    assert cumulative_tax(D("36001"), brackets) == D("1080.10")  # 10 % − 2,520
    assert cumulative_tax(D("1000000"), brackets) == D("268080.00")  # 45 % − 181,920


CN_RULES = {
    "currency": "CNY", "paid_days_per_month": "21.75", "hours_per_day": "8", "overtime_multiplier": "1.5",
    "contribution_base_min": "7384", "contribution_base_max": "36921",
    "employee_rates": {"pension": "0.08", "medical": "0.02", "unemployment": "0.005"},
    "employer_rates": {"pension": "0.16", "medical": "0.10", "unemployment": "0.005", "work_injury": "0.0026"},
    "housing_fund_rate": "0.07", "monthly_basic_deduction": "5000",
    "iit_brackets": [["36000", "0.03", "0"], ["144000", "0.10", "2520"], ["300000", "0.20", "16920"],
                     ["420000", "0.25", "31920"], ["660000", "0.30", "52920"], ["960000", "0.35", "85920"],
                     [None, "0.45", "181920"]],
}  # fmt: skip


def test_payroll_months_match_hand_computed_values(settings, conn):
    with api(settings) as client:
        hr, admin, fin = (
            token(client, conn, "hr"),
            token(client, conn, "admin"),
            token(client, conn, "finance"),
        )
        lead = employee(client, hr, factories.user(conn, role="dispatcher"), position="Lead dispatcher")
        junior = employee(client, hr, factories.user(conn, role="customer_service"), position="Agent")
        r = client.put(f"/api/v1/hr/employees/{lead['id']}/pay", headers=hr,
                       json={"base_salary": "20000.00", "allowance": "1000.00"})  # fmt: skip
        assert r.status_code == 200
        client.put(f"/api/v1/hr/employees/{junior['id']}/pay", headers=hr, json={"base_salary": "5000.00"})
        # January: 10 h overtime, one unpaid day, a 3,000 bonus approved that month.
        client.put(f"/api/v1/hr/employees/{lead['id']}/attendance", headers=hr, json={"days": [
            {"day": "2026-01-12", "status": "present", "overtime_hours": "4"},
            {"day": "2026-01-13", "status": "present", "overtime_hours": "6"}]})  # fmt: skip
        lv = client.post(f"/api/v1/hr/employees/{lead['id']}/leave", headers=hr,
                         json={"kind": "unpaid", "start_date": "2026-01-20", "end_date": "2026-01-20"}).json()  # fmt: skip
        client.post(f"/api/v1/hr/leave/{lv['id']}/decision", json={"approve": True}, headers=hr)
        rv = client.post("/api/v1/hr/reviews", headers=hr, json={
            "employee_id": lead["id"], "period_start": "2025-10-01", "period_end": "2025-12-31"}).json()  # fmt: skip
        client.post(f"/api/v1/hr/reviews/{rv['id']}/rating", headers=hr,
                    json={"rating": 5, "outcome": "bonus", "amount": "3000.00"})  # fmt: skip
        assert client.post(f"/api/v1/hr/reviews/{rv['id']}/approve", headers=admin).status_code == 200
        conn.execute("UPDATE reviews SET approved_at = '2026-01-15T10:00:00Z' WHERE id = %s", (rv["id"],))

        r = client.post("/api/v1/hr/payroll/runs", json={"period": "2026-01"}, headers=hr)
        assert r.status_code == 201, r.text
        jan = r.json()
        slips = {
            s["employee_id"]: s
            for s in client.get("/api/v1/hr/payroll/runs/2026-01/payslips", headers=hr).json()
        }
        s = slips[lead["id"]]
        # By hand: daily 20,000 / 21.75; overtime 10 h × daily / 8 × 1.5 = 1,724.14; unpaid 1 day = 919.54.
        assert (s["overtime_pay"], s["unpaid_deduction"], s["bonus"]) == ("1724.14", "919.54", "3000.00")
        assert s["gross"] == "24804.60"  # 20,000 + 1,000 + 1,724.14 + 3,000 − 919.54
        # Contribution base 21,000: pension 1,680, medical 420, unemployment 105; housing fund 1,470.
        assert s["employee_social_total"] == "2205.00" and s["housing_fund_employee"] == "1470.00"
        # Taxable 24,804.60 − 2,205 − 1,470 − 5,000 = 16,129.60 at 3 % = 483.89.
        assert (s["taxable_this_month"], s["income_tax"], s["net"]) == ("16129.60", "483.89", "20645.71")
        assert s["employer_social_total"] == "5619.60"  # 3,360 + 2,100 + 105 + 54.60
        j = slips[junior["id"]]  # below the floor: base 7,384 → 775.32 social, 516.88 housing; no tax
        assert (j["gross"], j["employee_social_total"], j["housing_fund_employee"], j["income_tax"], j["net"]) == (
            "5000.00", "775.32", "516.88", "0.00", "3707.80")  # fmt: skip
        t = jan["totals"]
        assert (t["gross"], t["net"], t["income_tax"]) == ("29804.60", "24353.51", "483.89")
        # Employer: lead 24,804.60 + 5,619.60 + 1,470; junior 5,000 + 1,975.96 (1,181.44 + 738.40 + 36.92 + 19.20
        # on 7,384) + 516.88.
        assert t["employer_cost"] == "39387.04"

        # Idempotent: the same month again is the same run, nothing recalculated or posted twice.
        again = client.post("/api/v1/hr/payroll/runs", json={"period": "2026-01"}, headers=hr)
        assert (
            again.status_code == 200 and again.json()["id"] == jan["id"] and again.json()["created"] is False
        )
        assert conn.execute("SELECT count(*) AS n FROM payslips").fetchone()["n"] == 2
        # Posted once through finance's ledger: per department, wages and employer costs against the dues.
        assert jan["status"] == "posted" and jan["posting"]["status"] == "posted"
        lines = ledger.department_lines(
            [({"department": "operations"}, s), ({"department": "customer_service"}, j)]
        )
        assert lines == [
            {"department": "customer_service", "gross": D("5000.00"), "withholdings": D("1292.20"),
             "employer_contributions": D("2492.84")},
            {"department": "operations", "gross": D("24804.60"), "withholdings": D("4158.89"),
             "employer_contributions": D("7089.60")},
        ]  # fmt: skip

        # February and March: cumulative withholding over the year.
        feb = client.post("/api/v1/hr/payroll/runs", json={"period": "2026-02"}, headers=hr).json()
        mar = client.post("/api/v1/hr/payroll/runs", json={"period": "2026-03"}, headers=hr).json()
        lead_slips = [
            {x["employee_id"]: x for x in client.get(f"/api/v1/hr/payroll/runs/{p}/payslips", headers=hr).json()}[
                lead["id"]] for p in ("2026-02", "2026-03")
        ]  # fmt: skip
        # Feb: taxable 21,000 − 3,675 − 5,000 = 12,325; cumulative 28,454.60 → 853.64 − 483.89 = 369.75.
        assert (lead_slips[0]["income_tax"], lead_slips[0]["net"]) == ("369.75", "16955.25")
        # Mar: cumulative 40,779.60 → 10 % − 2,520 = 1,557.96 − 853.64 = 704.32.
        assert (lead_slips[1]["income_tax"], lead_slips[1]["net"]) == ("704.32", "16620.68")
        assert feb["totals"]["net"] == str(D("16955.25") + D("3707.80"))
        assert mar["totals"]["income_tax"] == "704.32"
        late = client.post("/api/v1/hr/payroll/runs", json={"period": "2025-12"}, headers=hr)
        assert late.status_code == 201  # another year: its own withholding
        # A month run after a later one of its year would leave the later one's cumulative tax wrong: refused.
        conn.execute("DELETE FROM payslips WHERE period = '2026-02'")
        conn.execute("DELETE FROM payroll_runs WHERE period = '2026-02'")
        gap = client.post("/api/v1/hr/payroll/runs", json={"period": "2026-02"}, headers=hr)
        assert gap.status_code == 409 and "in order" in gap.json()["error"]["message"]

        # Payslips for hr and admin only; finance sees the run's totals.
        assert client.get("/api/v1/hr/payroll/runs/2026-01/payslips", headers=fin).status_code == 403
        assert (
            client.get("/api/v1/hr/payroll/runs/2026-01", headers=fin).json()["totals"]["gross"] == "29804.60"
        )
        bad = client.put("/api/v1/hr/payroll/profiles/cn", headers=admin,
                         json={"name": "x", "rules": {**CN_RULES, "housing_fund_rate": "0.5"}})  # fmt: skip
        assert bad.status_code == 422 and "housing_fund_rate" in bad.json()["error"]["message"]
    row = conn.execute("SELECT detail_enc FROM payslips LIMIT 1").fetchone()
    assert "24804" not in row["detail_enc"] and "gross" not in row["detail_enc"]
