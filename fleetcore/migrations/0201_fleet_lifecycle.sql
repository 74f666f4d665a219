-- Fleet lifecycle: status history with a trigger, service plan per vehicle, procurement, maintenance archive.

-- Service plan. Defaults follow the common manufacturer "fixed service" schedule of 15,000 km or 12 months,
-- whichever comes first (e.g. Volkswagen / Toyota European schedules); each vehicle may override them.
ALTER TABLE vehicles
    ADD COLUMN service_interval_km       integer NOT NULL DEFAULT 15000 CHECK (service_interval_km BETWEEN 1000 AND 100000),
    ADD COLUMN service_interval_days     integer NOT NULL DEFAULT 365 CHECK (service_interval_days BETWEEN 30 AND 1095),
    ADD COLUMN last_service_at           timestamptz,
    ADD COLUMN last_service_odometer_km  double precision NOT NULL DEFAULT 0 CHECK (last_service_odometer_km >= 0);

ALTER TABLE vehicle_status_history ADD COLUMN from_status text;

-- Every status change lands in the history, whoever makes it (API, CLI, another domain's SQL).
-- The writer may name itself and a note with set_config('fleet.actor' / 'fleet.status_note', ..., true).
CREATE FUNCTION fleet_vehicle_status_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status = 'retired' AND NEW.status <> 'retired' THEN
        RAISE EXCEPTION 'vehicle % is retired; retirement is final', OLD.vin USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO vehicle_status_history (vehicle_id, from_status, status, changed_by, note)
        VALUES (NEW.id, OLD.status, NEW.status,
                coalesce(nullif(current_setting('fleet.actor', true), ''), current_user),
                nullif(current_setting('fleet.status_note', true), ''));
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER vehicles_status_history BEFORE UPDATE OF status ON vehicles
    FOR EACH ROW EXECUTE FUNCTION fleet_vehicle_status_changed();

-- Procurement: one row per vehicle bought, planned -> ordered -> delivered (or cancelled before delivery).
CREATE TABLE procurements (
    id            bigserial PRIMARY KEY,
    status        text NOT NULL DEFAULT 'planned' CHECK (status IN ('planned', 'ordered', 'delivered', 'cancelled')),
    supplier      text NOT NULL CHECK (length(supplier) BETWEEN 1 AND 200),
    make          text NOT NULL,
    model         text NOT NULL,
    year          integer NOT NULL CHECK (year BETWEEN 1980 AND 2100),
    class         text NOT NULL CHECK (class IN ('economy', 'compact', 'midsize', 'fullsize', 'suv', 'van', 'premium', 'ev')),
    station_id    bigint NOT NULL REFERENCES stations (id),
    price         numeric(12, 2) NOT NULL CHECK (price >= 0),
    currency      text NOT NULL DEFAULT 'EUR' CHECK (currency ~ '^[A-Z]{3}$'),
    planned_on    date NOT NULL DEFAULT current_date,
    ordered_on    date,
    expected_on   date,
    delivered_on  date,
    vehicle_id    bigint UNIQUE REFERENCES vehicles (id),
    note          text NOT NULL DEFAULT '',
    created_by    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (ordered_on IS NULL OR ordered_on >= planned_on),
    CHECK (delivered_on IS NULL OR ordered_on IS NOT NULL AND delivered_on >= ordered_on),
    CHECK ((status = 'delivered') = (vehicle_id IS NOT NULL))
);
CREATE INDEX procurements_status ON procurements (status, planned_on);

-- Maintenance archive: one work order per visit; costs in the company currency.
CREATE TABLE maintenance_records (
    id            bigserial PRIMARY KEY,
    vehicle_id    bigint NOT NULL REFERENCES vehicles (id),
    work_order    text NOT NULL UNIQUE CHECK (length(work_order) BETWEEN 1 AND 64),
    kind          text NOT NULL DEFAULT 'repair'
                  CHECK (kind IN ('service', 'repair', 'inspection', 'tyres', 'damage', 'recall')),
    description   text NOT NULL CHECK (length(description) BETWEEN 1 AND 4000),
    parts         jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(parts) = 'array'),
    labour_cost   numeric(12, 2) NOT NULL DEFAULT 0 CHECK (labour_cost >= 0),
    parts_cost    numeric(12, 2) NOT NULL DEFAULT 0 CHECK (parts_cost >= 0),
    odometer_km   double precision CHECK (odometer_km >= 0),
    opened_at     timestamptz NOT NULL DEFAULT now(),
    closed_at     timestamptz,
    opened_by     text,
    closed_by     text,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (closed_at IS NULL OR closed_at >= opened_at)
);
CREATE INDEX maintenance_records_vehicle ON maintenance_records (vehicle_id, opened_at DESC);
CREATE INDEX maintenance_records_open ON maintenance_records (vehicle_id) WHERE closed_at IS NULL;
