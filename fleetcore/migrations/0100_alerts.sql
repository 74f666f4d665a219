-- Alerts raised by the monitor. One open (or acknowledged) alert per (vehicle, kind): repeats bump a counter.
CREATE TABLE alerts (
    id               bigserial PRIMARY KEY,
    vehicle_id       bigint NOT NULL REFERENCES vehicles (id) ON DELETE CASCADE,
    kind             text NOT NULL,
    severity         text NOT NULL CHECK (severity IN ('critical', 'high', 'medium', 'low')),
    status           text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged', 'resolved')),
    message          text NOT NULL DEFAULT '',
    opened_at        timestamptz NOT NULL,            -- sample time of the first trigger
    last_seen_at     timestamptz NOT NULL,            -- sample time of the latest trigger
    occurrences      integer NOT NULL DEFAULT 1,
    evidence         jsonb NOT NULL DEFAULT '[]'::jsonb,
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    resolved_at      timestamptz,
    resolved_by      text,                            -- a username, or 'auto' when the condition cleared
    resolution_note  text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX alerts_one_active ON alerts (vehicle_id, kind) WHERE status <> 'resolved';
CREATE INDEX alerts_vehicle_opened ON alerts (vehicle_id, opened_at DESC);
CREATE INDEX alerts_status_severity ON alerts (status, severity);

-- The back office reads these: a vehicle with an open critical alert is not rentable.
ALTER TABLE vehicle_state
    ADD COLUMN rentable boolean NOT NULL DEFAULT true,
    ADD COLUMN open_alerts integer NOT NULL DEFAULT 0;
