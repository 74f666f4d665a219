"""The SMTP sender of the outbox (`smtp://user:pass@host:port`, or `smtp+starttls://…` to upgrade to TLS)."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from backoffice.notifications.models import Email

SMTP_TIMEOUT_S = 30.0


class SmtpSender:
    """Sends each outbox message as one SMTP transaction (text, optional HTML alternative, attachments)."""

    def __init__(self, url: str, *, sender: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtp+starttls", "smtps"):
            raise ValueError(f"SMTP URL must start with smtp://, smtp+starttls:// or smtps://, got {url!r}")
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (465 if parts.scheme == "smtps" else 25)
        self.scheme = parts.scheme
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.sender = sender

    def message(self, email: Email) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = email.recipient
        msg["Subject"] = email.subject
        msg["Message-ID"] = f"<outbox-{email.id}@fleet-platform>"
        msg.set_content(email.body_text)
        if email.body_html:
            msg.add_alternative(email.body_html, subtype="html")
        for a in email.attachments:
            maintype, _, subtype = a.content_type.partition("/")
            msg.add_attachment(
                a.content, maintype=maintype, subtype=subtype or "octet-stream", filename=a.filename
            )
        return msg

    def send(self, email: Email) -> None:
        cls = smtplib.SMTP_SSL if self.scheme == "smtps" else smtplib.SMTP
        with cls(self.host, self.port, timeout=SMTP_TIMEOUT_S) as smtp:
            if self.scheme == "smtp+starttls":
                smtp.starttls()
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(self.message(email))
