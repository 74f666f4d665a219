-- Who may connect to the MQTT broker: one account per device (username = device id) and per service (ingest,
-- monitor, simulator). The secret is shown once and kept only as PBKDF2-HMAC-SHA512, in a form both Mosquitto's
-- password file ($7$) and EMQX's PostgreSQL authenticator (pbkdf2, sha512, hex hash + salt) can check.
CREATE TABLE broker_accounts (
    username    text PRIMARY KEY CHECK (username ~ '^[A-Za-z0-9_-]{1,64}$'),
    kind        text NOT NULL CHECK (kind IN ('device', 'service')),
    role        text NOT NULL CHECK (role IN ('device', 'ingest', 'monitor', 'simulator')),
    device_id   text REFERENCES devices (device_id) ON DELETE CASCADE,
    salt        text NOT NULL,                  -- printable; its UTF-8 bytes are the PBKDF2 salt
    iterations  integer NOT NULL CHECK (iterations > 0),
    hash        bytea NOT NULL,                 -- PBKDF2-HMAC-SHA512(secret, salt, iterations), 64 bytes
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text NOT NULL,
    rotated_at  timestamptz,
    revoked_at  timestamptz,
    CHECK ((kind = 'device') = (role = 'device')),
    CHECK ((kind = 'device') = (device_id IS NOT NULL AND device_id = username))
);
