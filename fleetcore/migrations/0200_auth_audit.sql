-- Staff users, roles and the audit log of every write.
CREATE TABLE staff_users (
    id             bigserial PRIMARY KEY,
    username       text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9_.@-]{3,64}$'),
    full_name      text NOT NULL DEFAULT '',
    department     text NOT NULL DEFAULT 'operations'
                   CHECK (department IN ('operations', 'customer_service', 'technology', 'finance', 'administration')),
    role           text NOT NULL CHECK (role IN ('admin', 'dispatcher', 'customer_service', 'finance', 'hr', 'technician')),
    password_hash  text NOT NULL,
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor_id    bigint REFERENCES staff_users (id),
    actor       text NOT NULL,           -- username, or 'system' / 'cli'
    action      text NOT NULL,           -- e.g. order.confirm, vehicle.update
    entity      text NOT NULL,           -- table / domain object
    entity_id   text,
    before      jsonb,
    after       jsonb
);
CREATE INDEX audit_log_entity ON audit_log (entity, entity_id, at);
CREATE INDEX audit_log_at ON audit_log (at DESC);
