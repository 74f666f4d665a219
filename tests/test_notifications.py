"""The outbox delivers through a real (local) SMTP server, retries with back-off, and never sends twice; staff
notices reach the user or the role they are for."""

from __future__ import annotations

import email
import email.policy
import threading
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller

from backoffice.notifications import service
from backoffice.notifications.models import MAX_ATTEMPTS, Attachment
from backoffice.notifications.scheduled import JOBS
from backoffice.notifications.smtp import SmtpSender
from fleetapp.embedded import free_port
from fleetcore.db import connect
from tests.test_orders_helpers import api, token

pytestmark = [pytest.mark.db]
ACTOR = {"username": "test"}


class Inbox:
    """aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001, N802
        with self.lock:
            self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, str]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()


def test_queued_mail_is_delivered_once_with_attachments(db_url, conn, smtp) -> None:
    inbox, url = smtp
    pdf = Attachment("report.pdf", "application/pdf", b"%PDF-1.4 fake")
    first = service.enqueue_email(
        conn, recipient="ops@example.com", subject="Daily report", body_text="Attached.", source="reports",
        actor=ACTOR, attachments=[pdf], dedupe_key="daily:2026-12-01",
    )  # fmt: skip
    again = service.enqueue_email(
        conn, recipient="ops@example.com", subject="Daily report", body_text="Attached.", source="reports",
        actor=ACTOR, dedupe_key="daily:2026-12-01",
    )  # fmt: skip
    assert again["id"] == first["id"]  # idempotent
    service.enqueue_email(
        conn, recipient="客户@example.cn", subject="节日快乐", body_text="祝您节日快乐！", source="support",
        actor=ACTOR, body_html="<p>祝您节日快乐！</p>",
    )  # fmt: skip
    sender = SmtpSender(url, sender="Fleet <noreply@fleet.test>")
    res = service.dispatch(lambda: connect(db_url, autocommit=True), sender=sender)
    assert (res.sent, res.failed) == (2, 0)
    assert (
        service.dispatch(lambda: connect(db_url, autocommit=True), sender=sender).sent == 0
    )  # nothing twice
    by_subject = {m["Subject"]: m for m in inbox.messages}
    assert len(inbox.messages) == 2
    report = by_subject["Daily report"]
    att = next(report.iter_attachments())
    assert att.get_filename() == "report.pdf" and att.get_content() == b"%PDF-1.4 fake"
    greeting = by_subject["节日快乐"]
    assert greeting.get_body(("plain",)).get_content().strip() == "祝您节日快乐！"
    rows = conn.execute("SELECT status, sent_at FROM outbox ORDER BY id").fetchall()
    assert [r["status"] for r in rows] == ["sent", "sent"] and all(r["sent_at"] for r in rows)


def test_a_failing_relay_is_retried_with_back_off_then_given_up(db_url, conn) -> None:
    m = service.enqueue_email(
        conn, recipient="x@example.com", subject="s", body_text="b", source="t", actor=ACTOR
    )
    dead = SmtpSender(f"smtp://127.0.0.1:{free_port()}", sender="f@example.com")  # nothing listens there
    res = service.dispatch(lambda: connect(db_url, autocommit=True), sender=dead)
    assert res.failed == 1
    row = conn.execute("SELECT status, attempts, last_error, next_attempt_at > now() AS later FROM outbox WHERE id = %s",
                       (m["id"],)).fetchone()  # fmt: skip
    assert row["status"] == "queued" and row["attempts"] == 1 and row["later"] and row["last_error"]
    # not due yet: a second run does not touch it
    assert service.dispatch(lambda: connect(db_url, autocommit=True), sender=dead).failed == 0
    for _attempt in range(2, MAX_ATTEMPTS + 1):
        conn.execute("UPDATE outbox SET next_attempt_at = now() WHERE id = %s", (m["id"],))
        service.dispatch(lambda: connect(db_url, autocommit=True), sender=dead)
    row = conn.execute("SELECT status, attempts FROM outbox WHERE id = %s", (m["id"],)).fetchone()
    assert row == {"status": "failed", "attempts": MAX_ATTEMPTS}


def test_the_scheduled_job_uses_the_configured_relay(settings, conn, smtp) -> None:
    inbox, url = smtp
    service.enqueue_email(
        conn, recipient="a@example.com", subject="hello", body_text="b", source="t", actor=ACTOR
    )
    job = JOBS[0]
    assert "stay queued" in str(job.run(settings))  # no relay configured: nothing sent, nothing lost
    assert inbox.messages == []
    assert "sent=1" in str(job.run(settings.model_copy(update={"smtp_url": url})))
    assert [m["Subject"] for m in inbox.messages] == ["hello"]


def test_staff_notices_reach_their_user_or_role_and_are_marked_read(settings, conn) -> None:
    with api(settings) as client:
        fin = token(client, conn, "finance")
        disp = token(client, conn, "dispatcher")
        me = client.get("/api/v1/auth/me", headers=fin).json()
        service.notify_staff(conn, kind="budget.variance", title="Fuel 18 % over budget", role="finance")
        service.notify_staff(conn, kind="direct", title="For you", user_id=me["id"])
        mine = client.get("/api/v1/notifications", headers=fin).json()
        assert [n["title"] for n in mine] == ["For you", "Fuel 18 % over budget"]
        assert client.get("/api/v1/notifications", headers=disp).json() == []
        r = client.post(f"/api/v1/notifications/{mine[0]['id']}/read", headers=fin)
        assert r.status_code == 204
        unread = client.get("/api/v1/notifications", params={"unread": True}, headers=fin).json()
        assert [n["title"] for n in unread] == ["Fuel 18 % over budget"]
        assert client.post(f"/api/v1/notifications/{mine[1]['id']}/read", headers=disp).status_code == 404
        # the outbox is for administrators
        assert client.get("/api/v1/outbox", headers=fin).status_code == 403
        admin = token(client, conn, "admin")
        assert client.get("/api/v1/outbox", headers=admin).status_code == 200
