"""Structured log lines every long-running process writes: `event=NAME key=value ...` (logfmt)."""

from __future__ import annotations

import logging
from typing import Any


def kv(log: logging.Logger, level: int, event: str, **fields: Any) -> None:
    """Log one structured line: `event=NAME key=value ...` (values with spaces are quoted)."""
    if not log.isEnabledFor(level):
        return
    parts = [f"event={event}"]
    for k, v in fields.items():
        s = f"{v:.4f}" if isinstance(v, float) else str(v)
        if " " in s or "=" in s or not s:
            s = '"' + s.replace('"', '\\"') + '"'
        parts.append(f"{k}={s}")
    log.log(level, " ".join(parts))
