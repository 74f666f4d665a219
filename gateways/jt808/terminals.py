"""JT/T 808 terminals in PostgreSQL: the registry check and the authentication codes this gateway issued.

The database is the meeting point (as for the monitor's registry cache): whether a terminal may register is whether
its device id is in `devices`, which the back office owns and this module only reads. `jt808_terminals` is this
gateway's own table (migration 0301): the SHA-256 of the code issued at registration, and the alarm bits last
republished (so an alarm is reported once per rising edge across reconnects and restarts).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from psycopg_pool import AsyncConnectionPool

# 16 random bytes as hex: 32 ASCII characters, well inside the 0x8100 STRING and any terminal's storage.
AUTH_CODE_BYTES = 16


def device_id_for(prefix: str, phone: str) -> str:
    """The contract device id of a terminal: prefix + its phone number without leading zeros.

    2013 headers carry 12 BCD digits, 2019 headers 20; stripping the zeros gives the same id for the same SIM in
    both (an 11-digit Chinese mobile number becomes 013912345678 or 00000000013912345678 on the wire).
    """
    return prefix + (phone.lstrip("0") or "0")


def _digest(code: str) -> bytes:
    return hashlib.sha256(code.encode()).digest()


@dataclass(slots=True)
class Terminal:
    device_id: str
    alarm_bits: int


class TerminalStore:
    """Data access of the JT/T 808 gateway over a small async pool (one statement per call, autocommit)."""

    def __init__(self, url: str, *, max_size: int = 4) -> None:
        self.pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            url, min_size=1, max_size=max_size, kwargs={"autocommit": True}, open=False, name="jt808"
        )

    async def open(self) -> None:
        await self.pool.open(wait=True, timeout=30)

    async def close(self) -> None:
        await self.pool.close()

    async def is_registered(self, *, device_id: str) -> bool:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT 1 FROM devices WHERE device_id = %s", (device_id,))
            return await cur.fetchone() is not None

    async def issue(self, *, device_id: str, phone: str) -> str:
        """A new authentication code for a registered device (replacing any earlier one); returns the code."""
        code = secrets.token_hex(AUTH_CODE_BYTES)
        async with self.pool.connection() as conn:
            await conn.execute(
                """INSERT INTO jt808_terminals (device_id, phone, auth_sha256) VALUES (%s, %s, %s)
                   ON CONFLICT (device_id) DO UPDATE
                      SET phone = EXCLUDED.phone, auth_sha256 = EXCLUDED.auth_sha256, issued_at = now()""",
                (device_id, phone, _digest(code)),
            )
        return code

    async def authenticate(self, *, device_id: str, code: str) -> Terminal | None:
        """The terminal when `code` is the one issued to this still-registered device; None otherwise."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                """SELECT t.auth_sha256, t.alarm_bits FROM jt808_terminals t
                     JOIN devices d ON d.device_id = t.device_id
                    WHERE t.device_id = %s""",
                (device_id,),
            )
            row = await cur.fetchone()
            if row is None or not hmac.compare_digest(bytes(row[0]), _digest(code)):
                return None
            await conn.execute(
                "UPDATE jt808_terminals SET authenticated_at = now() WHERE device_id = %s", (device_id,)
            )
        return Terminal(device_id, int(row[1]))

    async def save_alarms(self, *, device_id: str, bits: int, ts_ms: int) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                """UPDATE jt808_terminals SET alarm_bits = %s, alarm_ts = to_timestamp(%s / 1000.0)
                    WHERE device_id = %s""",
                (bits, ts_ms, device_id),
            )
