"""The scheduler process: jobs run with their own connection, failures are contained, --once works."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from fleetcore.jobs import Job, run, run_job
from tests import factories
from tests.test_orders_helpers import api, create_customer, create_order, future, token


def test_failing_job_is_contained_and_others_still_run(settings, caplog):
    ran = threading.Event()
    jobs = (
        Job("boom", 1, lambda s: 1 / 0),
        Job("ok", 1, lambda s: ran.set()),
    )
    assert run_job(jobs[0], settings) is False
    assert "job=boom status=failed" in caplog.text
    stop = threading.Event()
    t = threading.Thread(target=run, args=(settings, stop, jobs))
    t.start()
    try:
        assert ran.wait(5), "the healthy job never ran beside the failing one"
    finally:
        stop.set()
        t.join(10)
    assert not t.is_alive()


def test_once_sweeps_a_no_show(settings, conn):
    s = factories.station(conn)
    factories.vehicle(conn, station_code=s["code"], vehicle_class="compact")
    with api(settings) as client:
        cs = token(client, conn, "customer_service")
        cust = create_customer(client, cs)
        o = create_order(
            client, cs, customer_id=cust["id"], pickup=s["code"], pickup_at=future(1), return_at=future(30)
        )
        assert client.post(f"/api/v1/orders/{o['id']}/confirm", headers=cs).status_code == 200
    # The pickup was 4 h ago (past the 3 h grace): the scheduler process records a no-show.
    conn.execute("UPDATE orders SET pickup_at = now() - interval '4 hours' WHERE id = %s", (o["id"],))
    env = {**os.environ, "FLEET_DATABASE_URL": settings.database_url, "FLEET_TOPIC_ROOT": settings.topic_root}
    r = subprocess.run([sys.executable, "-m", "fleetapp.cli", "scheduler", "--once"], env=env, capture_output=True,
                       text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    for job in ("orders.no_show_sweep", "ingest.quarantine_replay", "ingest.retention"):
        assert f"job={job} status=ok" in r.stderr
    row = conn.execute("SELECT status FROM orders WHERE id = %s", (o["id"],)).fetchone()
    assert row["status"] == "no_show"
