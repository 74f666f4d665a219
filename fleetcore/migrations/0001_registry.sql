-- Registry: stations, vehicles, devices and which device is installed in which vehicle.
CREATE TABLE stations (
    id          bigserial PRIMARY KEY,
    code        text NOT NULL UNIQUE CHECK (code ~ '^[A-Z0-9_-]{2,16}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    lat         double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon         double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE vehicles (
    id               bigserial PRIMARY KEY,
    vin              text NOT NULL UNIQUE CHECK (vin ~ '^[A-HJ-NPR-Z0-9]{17}$'),
    plate            text NOT NULL UNIQUE CHECK (length(plate) BETWEEN 1 AND 16),
    make             text NOT NULL,
    model            text NOT NULL,
    year             integer NOT NULL CHECK (year BETWEEN 1980 AND 2100),
    class            text NOT NULL CHECK (class IN ('economy', 'compact', 'midsize', 'fullsize', 'suv', 'van', 'premium', 'ev')),
    home_station_id  bigint REFERENCES stations (id),
    status           text NOT NULL DEFAULT 'available'
                     CHECK (status IN ('available', 'reserved', 'rented', 'maintenance', 'out_of_service', 'retired')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX vehicles_home_station ON vehicles (home_station_id);
CREATE INDEX vehicles_class_status ON vehicles (class, status);

CREATE TABLE vehicle_status_history (
    id          bigserial PRIMARY KEY,
    vehicle_id  bigint NOT NULL REFERENCES vehicles (id) ON DELETE CASCADE,
    status      text NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    changed_by  text,
    note        text
);
CREATE INDEX vehicle_status_history_vehicle ON vehicle_status_history (vehicle_id, changed_at);

CREATE TABLE devices (
    device_id   text PRIMARY KEY CHECK (device_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    protocol    text NOT NULL DEFAULT 'json' CHECK (protocol IN ('json', 'obd', 'nmea')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Install history: a device is in at most one vehicle and a vehicle has at most one device at a time.
CREATE TABLE device_installs (
    id            bigserial PRIMARY KEY,
    device_id     text NOT NULL REFERENCES devices (device_id),
    vehicle_id    bigint NOT NULL REFERENCES vehicles (id),
    installed_at  timestamptz NOT NULL DEFAULT now(),
    removed_at    timestamptz,
    CHECK (removed_at IS NULL OR removed_at >= installed_at)
);
CREATE UNIQUE INDEX device_installs_active_device ON device_installs (device_id) WHERE removed_at IS NULL;
CREATE UNIQUE INDEX device_installs_active_vehicle ON device_installs (vehicle_id) WHERE removed_at IS NULL;
