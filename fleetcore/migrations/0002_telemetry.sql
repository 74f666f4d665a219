-- Telemetry: raw readings (a hypertable when TimescaleDB is present), device events,
-- the latest state per vehicle, and everything ingest rejected or quarantined.
CREATE TABLE readings (
    ts               timestamptz NOT NULL,
    device_id        text NOT NULL,
    vehicle_id       bigint NOT NULL,
    kind             text NOT NULL,       -- telemetry | obd | nmea (the topic kind)
    seq              bigint NOT NULL,     -- device sequence; for NMEA the sample's epoch milliseconds
    lat              double precision,
    lon              double precision,
    speed_kmh        real,
    heading_deg      real,
    alt_m            real,
    hdop             real,
    sats             smallint,
    odometer_km      double precision,
    engine_hours     double precision,
    rpm              real,
    coolant_c        real,
    engine_load_pct  real,
    throttle_pct     real,
    fuel_pct         real,
    battery_v        real,
    ignition         boolean,
    accel_x          real,
    accel_y          real,
    accel_z          real,
    dtc              text[],
    received_at      timestamptz NOT NULL DEFAULT now()
);
-- A sample is stored once: (device, kind, seq) identifies it; ts is part of the key because a
-- hypertable's unique indexes must contain the time column (a resent sample carries the same ts).
CREATE UNIQUE INDEX readings_sample_key ON readings (device_id, kind, seq, ts);
CREATE INDEX readings_vehicle_ts ON readings (vehicle_id, ts DESC);

CREATE TABLE device_events (
    ts           timestamptz NOT NULL,
    device_id    text NOT NULL,
    vehicle_id   bigint NOT NULL,
    seq          bigint NOT NULL,
    type         text NOT NULL,
    data         jsonb NOT NULL DEFAULT '{}'::jsonb,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX device_events_key ON device_events (device_id, seq, ts);
CREATE INDEX device_events_vehicle_ts ON device_events (vehicle_id, ts DESC);

CREATE TABLE vehicle_state (
    vehicle_id         bigint PRIMARY KEY REFERENCES vehicles (id) ON DELETE CASCADE,
    device_id          text,
    ts                 timestamptz,          -- sample time of the newest sample applied
    lat                double precision,
    lon                double precision,
    speed_kmh          real,
    heading_deg        real,
    alt_m              real,
    odometer_km        double precision,
    engine_hours       double precision,
    rpm                real,
    coolant_c          real,
    engine_load_pct    real,
    fuel_pct           real,
    battery_v          real,
    ignition           boolean,
    dtc                text[],
    online             boolean NOT NULL DEFAULT false,
    online_changed_at  timestamptz,
    last_seen          timestamptz,          -- arrival time of the newest message
    health             text NOT NULL DEFAULT 'ok' CHECK (health IN ('ok', 'warning', 'critical')),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ingest_rejections (
    id           bigserial PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    topic        text NOT NULL,
    device_id    text,
    payload      bytea NOT NULL,
    reason       text NOT NULL,   -- short machine-readable code, e.g. bad_json, out_of_range
    detail       text NOT NULL DEFAULT ''
);
CREATE INDEX ingest_rejections_received ON ingest_rejections (received_at DESC);
CREATE INDEX ingest_rejections_reason ON ingest_rejections (reason);

-- Messages from devices not (yet) installed in a vehicle; `fleet ingest replay` re-processes them.
CREATE TABLE ingest_quarantine (
    id             bigserial PRIMARY KEY,
    received_at    timestamptz NOT NULL DEFAULT now(),
    topic          text NOT NULL,
    device_id      text NOT NULL,
    payload        bytea NOT NULL,
    replayed_at    timestamptz,
    replay_result  text
);
CREATE INDEX ingest_quarantine_pending ON ingest_quarantine (device_id) WHERE replayed_at IS NULL;

-- Exact counters kept in the same transaction as the rows they count (count(*) on a big hypertable is slow).
CREATE TABLE ingest_counters (
    name   text PRIMARY KEY,
    value  bigint NOT NULL DEFAULT 0
);
INSERT INTO ingest_counters (name) VALUES
    ('readings_stored'), ('events_stored'), ('duplicates_skipped'),
    ('messages_received'), ('messages_rejected'), ('messages_quarantined');
