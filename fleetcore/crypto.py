"""Application-level encryption of personal fields at rest (salaries, identity numbers), with key rotation and a
blind index for exact lookup. Shared by every domain that keeps such fields (HR now; customers' identifiers next).

- `FieldCipher.encrypt(value, context=...)` → bytes: version byte, key id (2 bytes), 12-byte random nonce, then
  AES-256-GCM ciphertext+tag. The `context` (e.g. "employees.salary") is the associated data: a value copied into
  another column does not decrypt there.
- Keys: FLEET_FIELD_KEYS = "3:<base64 32 bytes>,2:<...>" — the first is current (new writes), the others are still
  read. Rotation: put a new key first, run the owner's re-encryption (`needs_rotation` tells which values), then drop
  the old key.
- Blind index: HMAC-SHA256 under FLEET_BLIND_INDEX_KEY over the normalised value and the context, truncated to 16
  bytes; stored next to the ciphertext in a unique column, it finds "the employee with this identity number" without
  decrypting every row. It is not rotated with the field keys (a new index key means recomputing the column).
- Development and test installations without keys derive both from FLEET_SECRET_KEY (HKDF, distinct labels);
  production refuses to start a process that needs them without FLEET_FIELD_KEYS and FLEET_BLIND_INDEX_KEY.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import unicodedata

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fleetcore.errors import ConfigError
from fleetcore.settings import Settings

FORMAT_VERSION = 1
NONCE_BYTES = 12  # NIST SP 800-38D recommends 96-bit nonces for GCM
KEY_BYTES = 32  # AES-256
INDEX_BYTES = 16  # 128 bits: collisions are negligible at any staff or customer count


class DecryptionError(Exception):
    """The value was not written under a key this process holds, or was altered, or belongs to another field."""


def _derive(secret: str, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=label).derive(secret.encode())


def parse_keys(text: str) -> tuple[int, dict[int, bytes]]:
    """'3:<b64>,2:<b64>' → (current id 3, {3: key, 2: key}); ValueError naming what is wrong."""
    keys: dict[int, bytes] = {}
    current = None
    for part in (p.strip() for p in text.split(",") if p.strip()):
        kid_text, _, b64 = part.partition(":")
        if not kid_text.isdigit() or not 0 < int(kid_text) < 65536:
            raise ValueError(f"field key id must be 1-65535, got {kid_text!r}")
        key = base64.b64decode(b64, validate=True)
        if len(key) != KEY_BYTES:
            raise ValueError(f"field key {kid_text} must be {KEY_BYTES} bytes (base64), got {len(key)}")
        kid = int(kid_text)
        if kid in keys:
            raise ValueError(f"field key id {kid} appears twice")
        keys[kid] = key
        current = kid if current is None else current
    if current is None:
        raise ValueError("no field keys given")
    return current, keys


def new_key_text(kid: int) -> str:
    """A fresh 'id:base64' key entry for FLEET_FIELD_KEYS."""
    return f"{kid}:{base64.b64encode(os.urandom(KEY_BYTES)).decode()}"


class FieldCipher:
    """Encrypts and decrypts personal fields; computes blind indexes."""

    def __init__(self, keys: dict[int, bytes], current: int, index_key: bytes) -> None:
        if current not in keys:
            raise ValueError("the current key must be one of the keys")
        self.keys = keys
        self.current = current
        self._index_key = index_key

    @classmethod
    def from_settings(cls, settings: Settings) -> FieldCipher:
        return _cipher(
            settings.field_keys, settings.blind_index_key, settings.secret_key, settings.environment
        )

    def encrypt(self, value: str, *, context: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        head = bytes([FORMAT_VERSION]) + self.current.to_bytes(2, "big")
        ct = AESGCM(self.keys[self.current]).encrypt(nonce, value.encode(), head + context.encode())
        return head + nonce + ct

    def decrypt(self, blob: bytes | memoryview, *, context: str) -> str:
        blob = bytes(blob)
        if len(blob) < 3 + NONCE_BYTES + 16 or blob[0] != FORMAT_VERSION:
            raise DecryptionError("not an encrypted field value")
        kid = int.from_bytes(blob[1:3], "big")
        key = self.keys.get(kid)
        if key is None:
            raise DecryptionError(f"field key {kid} is not configured (FLEET_FIELD_KEYS)")
        try:
            plain = AESGCM(key).decrypt(
                blob[3 : 3 + NONCE_BYTES], blob[3 + NONCE_BYTES :], blob[:3] + context.encode()
            )
        except Exception as exc:  # InvalidTag: wrong key, altered value or another field's value
            raise DecryptionError("field value does not authenticate") from exc
        return plain.decode()

    def key_id(self, blob: bytes | memoryview) -> int:
        return int.from_bytes(bytes(blob)[1:3], "big")

    def needs_rotation(self, blob: bytes | memoryview | None) -> bool:
        """True for a value written under an older key."""
        return blob is not None and self.key_id(blob) != self.current

    def rotate(self, blob: bytes | memoryview, *, context: str) -> bytes:
        """The same value under the current key."""
        return self.encrypt(self.decrypt(blob, context=context), context=context)

    def blind_index(self, value: str, *, context: str) -> bytes:
        """Deterministic keyed digest of the normalised value (NFKC, no spaces, upper case) for exact lookup."""
        norm = unicodedata.normalize("NFKC", value).replace(" ", "").replace("-", "").upper()
        mac = hmac.new(self._index_key, context.encode() + b"\x00" + norm.encode(), hashlib.sha256)
        return mac.digest()[:INDEX_BYTES]


@functools.lru_cache(maxsize=8)
def _cipher(
    field_keys: str | None, index_key: str | None, secret: str | None, environment: str
) -> FieldCipher:
    if field_keys and index_key:
        current, keys = parse_keys(field_keys)
        return FieldCipher(keys, current, base64.b64decode(index_key))
    if environment == "production":
        raise ConfigError(
            "FLEET_FIELD_KEYS and FLEET_BLIND_INDEX_KEY are required in production (see docs/deploy.md)"
        )
    if not secret:
        raise ConfigError(
            "set FLEET_FIELD_KEYS and FLEET_BLIND_INDEX_KEY (or FLEET_SECRET_KEY outside production)"
        )
    if field_keys:
        current, keys = parse_keys(field_keys)
    else:
        current, keys = 1, {1: _derive(secret, b"fleet field key 1")}
    idx = base64.b64decode(index_key) if index_key else _derive(secret, b"fleet blind index")
    return FieldCipher(keys, current, idx)
