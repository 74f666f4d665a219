-- Geofences for the monitor: station areas, permitted operating regions, restricted zones (GeoJSON, WGS84 lon/lat).
CREATE TABLE geofences (
    id          bigserial PRIMARY KEY,
    code        text NOT NULL UNIQUE CHECK (length(code) BETWEEN 1 AND 64),
    name        text NOT NULL DEFAULT '',
    kind        text NOT NULL CHECK (kind IN ('station', 'permitted', 'restricted')),
    station_id  bigint REFERENCES stations (id) ON DELETE CASCADE,
    geometry    jsonb NOT NULL,
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Per-vehicle-class overrides of the monitor's detector thresholds (names as in monitor/thresholds.py).
CREATE TABLE monitor_thresholds (
    vehicle_class  text NOT NULL,
    name           text NOT NULL,
    value          double precision NOT NULL,
    note           text NOT NULL DEFAULT '',
    PRIMARY KEY (vehicle_class, name)
);

CREATE INDEX alerts_opened ON alerts (opened_at DESC);
