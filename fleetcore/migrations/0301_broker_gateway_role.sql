-- Protocol gateways (gateways/, docs/gateways.md).
-- 1. A broker service role for them: write every device's contract topics, read the Teltonika trackers' topic.
ALTER TABLE broker_accounts DROP CONSTRAINT broker_accounts_role_check;
ALTER TABLE broker_accounts ADD CONSTRAINT broker_accounts_role_check
    CHECK (role IN ('device', 'ingest', 'monitor', 'simulator', 'gateway'));

-- 2. JT/T 808 terminals, owned by the JT/T 808 gateway: the authentication code it issued at registration (0x8100;
-- kept as SHA-256 only, the code is a bearer credential) and the alarm bits last republished, so that an alarm is
-- reported once per rising edge across reconnects and gateway restarts. A terminal is a registered device
-- (`devices`, the back office's registry): the gateway reads that table and never writes it.
CREATE TABLE jt808_terminals (
    device_id       text PRIMARY KEY REFERENCES devices (device_id) ON DELETE CASCADE,
    phone           text NOT NULL CHECK (phone ~ '^[0-9]{1,20}$'),
    auth_sha256     bytea NOT NULL CHECK (length(auth_sha256) = 32),
    issued_at       timestamptz NOT NULL DEFAULT now(),
    authenticated_at timestamptz,
    alarm_bits      bigint NOT NULL DEFAULT 0,
    alarm_ts        timestamptz
);
