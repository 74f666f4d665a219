"""Encryption of personal identifiers at rest, with key rotation, and blind indexes for exact lookup.

A protected value is stored as `v1:<key id>:<base64url(nonce ‖ AES-256-GCM ciphertext ‖ tag)>`, the key id telling
which data key encrypted it, so keys rotate without a flag day: new writes use the current key, old values stay
readable while their key is listed, and `fleet crypto rotate` re-encrypts them. The table name, column and row are
bound in as associated data, so a ciphertext copied into another row or column does not decrypt.

Exact lookup (a licence number at the counter, a phone number on a call) uses a blind index: HMAC-SHA256 of the
normalised value under a separate key, stored beside the ciphertext. It reveals equality, nothing else.

Keys live outside the database: FLEET_DATA_KEYS (`kid:base64url-32-bytes,...`, the first one current) and
FLEET_BLIND_INDEX_KEY. Outside production, when unset, they are derived from FLEET_SECRET_KEY (HKDF) so a
development install works without configuration; production refuses to start without them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import unicodedata
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fleetcore.errors import ConfigError
from fleetcore.settings import Settings, get_settings

log = logging.getLogger(__name__)

PREFIX = "v1"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # GCM's standard nonce (NIST SP 800-38D)
BLIND_INDEX_HEX = 32  # 128 bits of the HMAC: collisions are not a concern at fleet scale
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def generate_key() -> str:
    """A new data or index key in the form the settings take (base64url of 32 random bytes)."""
    return _b64e(os.urandom(KEY_BYTES))


def _derive(secret: str, purpose: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=purpose.encode()).derive(
        secret.encode()
    )


def parse_keys(spec: str) -> list[tuple[str, bytes]]:
    """`kid:key,kid:key` → [(kid, 32 bytes)], in order (the first is current)."""
    out = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        kid, sep, raw = part.partition(":")
        if not sep or not _KEY_ID.match(kid):
            raise ConfigError("FLEET_DATA_KEYS is `id:base64key,...` with ids of letters, digits, '-' or '_'")
        key = _b64d(raw)
        if len(key) != KEY_BYTES:
            raise ConfigError(
                f"data key {kid!r} must be {KEY_BYTES} bytes (base64url); generate with `fleet crypto keygen`"
            )
        out.append((kid, key))
    if not out:
        raise ConfigError("FLEET_DATA_KEYS lists no key")
    if len({k for k, _ in out}) != len(out):
        raise ConfigError("FLEET_DATA_KEYS lists a key id twice")
    return out


def normalise_identifier(value: str) -> str:
    """Upper case, NFKC, without spaces, dots and dashes: `b 072-rre` and `B072RRE` look up the same."""
    text = unicodedata.normalize("NFKC", value).upper()
    return re.sub(r"[\s.\-/]", "", text)


def normalise_phone(value: str) -> str:
    """Digits only, a leading + kept: `+49 30 1234567` and `+49301234567` look up the same."""
    text = unicodedata.normalize("NFKC", value).strip()
    digits = re.sub(r"\D", "", text)
    return ("+" if text.startswith("+") else "") + digits


@dataclass(frozen=True)
class FieldCipher:
    """Encrypts and decrypts protected values; computes blind indexes."""

    keys: tuple[tuple[str, bytes], ...]
    index_key: bytes

    @property
    def current(self) -> str:
        return self.keys[0][0]

    @classmethod
    def from_settings(cls, settings: Settings) -> FieldCipher:
        if settings.data_keys:
            keys = parse_keys(settings.data_keys)
        elif settings.environment == "production":
            raise ConfigError("FLEET_DATA_KEYS must be set in production (see docs/deploy.md, personal data)")
        else:
            keys = [("s0", _derive(settings.require_secret_key(), "fleet data key"))]
        if settings.blind_index_key:
            index_key = _b64d(settings.blind_index_key)
            if len(index_key) != KEY_BYTES:
                raise ConfigError(f"FLEET_BLIND_INDEX_KEY must be {KEY_BYTES} bytes (base64url)")
        elif settings.environment == "production":
            raise ConfigError("FLEET_BLIND_INDEX_KEY must be set in production")
        else:
            index_key = _derive(settings.require_secret_key(), "fleet blind index key")
        return cls(keys=tuple(keys), index_key=index_key)

    def encrypt(self, value: str | None, *, context: str) -> str | None:
        """The stored form of `value` (None stays None); `context` (table.column:row) is authenticated."""
        if value is None:
            return None
        kid, key = self.keys[0]
        nonce = os.urandom(NONCE_BYTES)
        ct = AESGCM(key).encrypt(nonce, value.encode(), context.encode())
        return f"{PREFIX}:{kid}:{_b64e(nonce + ct)}"

    def decrypt(self, stored: str | None, *, context: str) -> str | None:
        """The plaintext of a stored value. A value written before encryption (no prefix) is returned as is."""
        if stored is None or not stored.startswith(PREFIX + ":"):
            return stored
        _, kid, body = stored.split(":", 2)
        key = dict(self.keys).get(kid)
        if key is None:
            raise ConfigError(
                f"a stored value was encrypted with key {kid!r}, which FLEET_DATA_KEYS no longer lists"
            )
        raw = _b64d(body)
        return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode()).decode()

    def needs_rotation(self, stored: str | None) -> bool:
        """True for a plaintext value or one encrypted under a key other than the current one."""
        return stored is not None and not stored.startswith(f"{PREFIX}:{self.current}:")

    def blind_index(self, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        return hmac.new(self.index_key, value.encode(), hashlib.sha256).hexdigest()[:BLIND_INDEX_HEX]


_configured: FieldCipher | None = None


def configure(settings: Settings) -> FieldCipher:
    """Set the process's cipher from its settings (the API and CLI do this at start); returns it."""
    global _configured
    _configured = FieldCipher.from_settings(settings)
    return _configured


def cipher() -> FieldCipher:
    """The process's cipher (from the process settings if nobody configured one)."""
    if _configured is None:
        return configure(get_settings())
    return _configured
