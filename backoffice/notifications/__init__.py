"""Notifications: e-mails through an outbox with a pluggable sender, and notices to staff."""
