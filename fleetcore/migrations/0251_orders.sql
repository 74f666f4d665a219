-- Orders, rates, vehicle reservations (no overbooking, enforced by an exclusion constraint), change history.
-- No extension needed (the embedded demo server has none): the exclusion constraint below compares the
-- vehicle as a one-point int8range, which GiST supports natively, instead of btree_gist's `vehicle_id WITH =`.

CREATE TABLE rates (
    vehicle_class         text PRIMARY KEY
                          CHECK (vehicle_class IN ('economy', 'compact', 'midsize', 'fullsize', 'suv', 'van', 'premium', 'ev')),
    currency              text NOT NULL DEFAULT 'EUR',
    daily_rate            numeric(10, 2) NOT NULL CHECK (daily_rate >= 0),
    weekend_daily_rate    numeric(10, 2) NOT NULL CHECK (weekend_daily_rate >= 0),
    included_km_per_day   integer NOT NULL CHECK (included_km_per_day >= 0),
    extra_km_price        numeric(10, 2) NOT NULL CHECK (extra_km_price >= 0),
    fuel_price_per_pct    numeric(10, 2) NOT NULL CHECK (fuel_price_per_pct >= 0),  -- per % of tank missing
    late_fee_per_hour     numeric(10, 2) NOT NULL CHECK (late_fee_per_hour >= 0),
    late_grace_minutes    integer NOT NULL CHECK (late_grace_minutes >= 0),
    one_way_fee           numeric(10, 2) NOT NULL CHECK (one_way_fee >= 0),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
-- Defaults (net, EUR): in the range of German airport-branch list prices; fuel per % assumes a ~50 l tank at
-- ~2.00 EUR/l plus a refuelling service charge (ev: per % of battery, charging service).
INSERT INTO rates (vehicle_class, daily_rate, weekend_daily_rate, included_km_per_day, extra_km_price,
                   fuel_price_per_pct, late_fee_per_hour, late_grace_minutes, one_way_fee) VALUES
    ('economy',  39.00, 29.00, 200, 0.25, 1.20, 10.00, 59,  49.00),
    ('compact',  49.00, 39.00, 200, 0.29, 1.30, 12.00, 59,  49.00),
    ('midsize',  59.00, 49.00, 250, 0.32, 1.50, 15.00, 59,  59.00),
    ('fullsize', 69.00, 59.00, 250, 0.35, 1.70, 18.00, 59,  69.00),
    ('suv',      79.00, 69.00, 250, 0.39, 1.90, 20.00, 59,  79.00),
    ('van',      89.00, 79.00, 250, 0.39, 2.00, 20.00, 59,  89.00),
    ('premium', 119.00, 99.00, 300, 0.59, 2.20, 30.00, 59,  99.00),
    ('ev',       69.00, 59.00, 250, 0.29, 0.80, 15.00, 59,  59.00);

CREATE TABLE orders (
    id                   bigserial PRIMARY KEY,
    customer_id          bigint NOT NULL REFERENCES customers (id),
    vehicle_class        text NOT NULL
                         CHECK (vehicle_class IN ('economy', 'compact', 'midsize', 'fullsize', 'suv', 'van', 'premium', 'ev')),
    pickup_station_id    bigint NOT NULL REFERENCES stations (id),
    return_station_id    bigint NOT NULL REFERENCES stations (id),
    pickup_at            timestamptz NOT NULL,
    return_at            timestamptz NOT NULL,
    channel              text NOT NULL CHECK (channel IN ('phone', 'app', 'counter')),
    status               text NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'confirmed', 'assigned', 'active', 'returned', 'completed',
                                           'cancelled', 'no_show')),
    quote                jsonb NOT NULL,
    quoted_net           numeric(12, 2) NOT NULL,
    vehicle_id           bigint REFERENCES vehicles (id),
    picked_up_at         timestamptz,
    pickup_odometer_km   double precision,
    pickup_fuel_pct      real,
    returned_at          timestamptz,
    actual_return_station_id bigint REFERENCES stations (id),
    return_odometer_km   double precision,
    return_fuel_pct      real,
    damage               jsonb NOT NULL DEFAULT '[]'::jsonb,   -- crash alerts during the rental (damage check)
    charges              jsonb,                                -- final charges at return
    cancelled_at         timestamptz,
    cancellation_fee     numeric(12, 2),
    notes                text NOT NULL DEFAULT '',
    created_by           text NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CHECK (pickup_at < return_at)
);
CREATE INDEX orders_status ON orders (status, pickup_at);
CREATE INDEX orders_customer ON orders (customer_id, created_at DESC);
CREATE INDEX orders_pickup_station ON orders (pickup_station_id, pickup_at);
CREATE INDEX orders_vehicle ON orders (vehicle_id);

-- Every change to an order: field, before and after (PATCH, status transitions).
CREATE TABLE order_changes (
    id          bigserial PRIMARY KEY,
    order_id    bigint NOT NULL REFERENCES orders (id),
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    action      text NOT NULL,
    before      jsonb,
    after       jsonb
);
CREATE INDEX order_changes_order ON order_changes (order_id, id);

-- A vehicle held for an order over a period. Two live holds of one vehicle can never overlap: the database
-- rejects the second (exclusion constraint), so concurrent confirmations of the last car cannot both win.
CREATE TABLE vehicle_assignments (
    id           bigserial PRIMARY KEY,
    order_id     bigint NOT NULL REFERENCES orders (id),
    vehicle_id   bigint NOT NULL REFERENCES vehicles (id),
    period       tstzrange NOT NULL CHECK (NOT isempty(period) OR released_at IS NOT NULL),
    created_at   timestamptz NOT NULL DEFAULT now(),
    released_at  timestamptz,
    CONSTRAINT vehicle_assignments_no_overlap
        EXCLUDE USING gist (int8range(vehicle_id, vehicle_id, '[]') WITH &&, period WITH &&) WHERE (released_at IS NULL)
);
CREATE UNIQUE INDEX vehicle_assignments_one_live_per_order ON vehicle_assignments (order_id) WHERE released_at IS NULL;

-- Vehicles moved between stations to serve an order (accepted dispatch proposals).
CREATE TABLE vehicle_transfers (
    id               bigserial PRIMARY KEY,
    vehicle_id       bigint NOT NULL REFERENCES vehicles (id),
    order_id         bigint REFERENCES orders (id),
    from_station_id  bigint NOT NULL REFERENCES stations (id),
    to_station_id    bigint NOT NULL REFERENCES stations (id),
    distance_km      double precision NOT NULL,
    requested_by     text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
