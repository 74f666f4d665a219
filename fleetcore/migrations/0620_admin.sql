-- Administration (backoffice.admin): office supplies (items, stock movements, purchase plans, requisitions, stock
-- counts), facility upkeep requests, and meetings and events (rooms, bookings the database never lets overlap,
-- attendees, minutes, action items).
CREATE TABLE supply_items (
    id             bigserial PRIMARY KEY,
    sku            text NOT NULL UNIQUE CHECK (sku ~ '^[A-Z0-9-]{2,32}$'),
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    unit           text NOT NULL DEFAULT 'pcs',
    stock          integer NOT NULL DEFAULT 0 CHECK (stock >= 0),
    reorder_point  integer NOT NULL DEFAULT 0 CHECK (reorder_point >= 0),
    reorder_qty    integer NOT NULL DEFAULT 0 CHECK (reorder_qty >= 0),
    unit_cost      numeric(12, 2) NOT NULL DEFAULT 0 CHECK (unit_cost >= 0),
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE stock_movements (
    id        bigserial PRIMARY KEY,
    item_id   bigint NOT NULL REFERENCES supply_items (id),
    at        timestamptz NOT NULL DEFAULT now(),
    qty       integer NOT NULL CHECK (qty <> 0),
    reason    text NOT NULL CHECK (reason IN ('purchase', 'issue', 'count')),
    ref       text NOT NULL,
    actor     text NOT NULL
);
CREATE INDEX stock_movements_item ON stock_movements (item_id, at);

CREATE TABLE purchase_plans (
    id           bigserial PRIMARY KEY,
    period       text NOT NULL CHECK (period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    status       text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'approved', 'received', 'cancelled')),
    note         text NOT NULL DEFAULT '',
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    approved_by  text,
    received_at  timestamptz
);
CREATE TABLE purchase_plan_lines (
    plan_id    bigint NOT NULL REFERENCES purchase_plans (id) ON DELETE CASCADE,
    item_id    bigint NOT NULL REFERENCES supply_items (id),
    qty        integer NOT NULL CHECK (qty > 0),
    unit_cost  numeric(12, 2) NOT NULL CHECK (unit_cost >= 0),
    PRIMARY KEY (plan_id, item_id)
);

CREATE TABLE supply_requisitions (
    id            bigserial PRIMARY KEY,
    requested_by  text NOT NULL,
    department    text NOT NULL REFERENCES departments (code),
    purpose       text NOT NULL DEFAULT '',
    status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected', 'issued')),
    decided_by    text,
    issued_by     text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE supply_requisition_lines (
    requisition_id  bigint NOT NULL REFERENCES supply_requisitions (id) ON DELETE CASCADE,
    item_id         bigint NOT NULL REFERENCES supply_items (id),
    qty             integer NOT NULL CHECK (qty > 0),
    PRIMARY KEY (requisition_id, item_id)
);

CREATE TABLE stock_counts (
    id          bigserial PRIMARY KEY,
    counted_at  timestamptz NOT NULL DEFAULT now(),
    counted_by  text NOT NULL,
    note        text NOT NULL DEFAULT ''
);
CREATE TABLE stock_count_lines (
    count_id  bigint NOT NULL REFERENCES stock_counts (id) ON DELETE CASCADE,
    item_id   bigint NOT NULL REFERENCES supply_items (id),
    expected  integer NOT NULL,
    counted   integer NOT NULL CHECK (counted >= 0),
    variance  integer GENERATED ALWAYS AS (counted - expected) STORED,
    PRIMARY KEY (count_id, item_id)
);

CREATE TABLE facility_requests (
    id            bigserial PRIMARY KEY,
    location      text NOT NULL CHECK (length(location) BETWEEN 1 AND 200),
    category      text NOT NULL CHECK (category IN ('electrical', 'plumbing', 'hvac', 'cleaning', 'it', 'furniture',
                                                    'security', 'other')),
    description   text NOT NULL CHECK (length(description) BETWEEN 1 AND 4000),
    priority      text NOT NULL DEFAULT 'normal' CHECK (priority IN ('low', 'normal', 'urgent')),
    status        text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'in_progress', 'done', 'cancelled')),
    requested_by  text NOT NULL,
    assignee      text,
    note          text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    done_at       timestamptz
);

CREATE TABLE rooms (
    id        bigserial PRIMARY KEY,
    code      text NOT NULL UNIQUE CHECK (code ~ '^[A-Z0-9-]{2,20}$'),
    name      text NOT NULL,
    capacity  integer NOT NULL CHECK (capacity BETWEEN 1 AND 1000),
    location  text NOT NULL DEFAULT '',
    active    boolean NOT NULL DEFAULT true
);

CREATE TABLE room_bookings (
    id            bigserial PRIMARY KEY,
    room_id       bigint NOT NULL REFERENCES rooms (id),
    kind          text NOT NULL DEFAULT 'meeting' CHECK (kind IN ('meeting', 'event', 'training', 'interview')),
    title         text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    organiser     text NOT NULL,
    starts_at     timestamptz NOT NULL,
    ends_at       timestamptz NOT NULL,
    attendees     text[] NOT NULL DEFAULT '{}',
    minutes       text,
    cancelled_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at),
    -- Two live bookings of one room never overlap: the database refuses the second, whatever the timing. The room
    -- is a one-point int8range (GiST supports it natively; no btree_gist, which the embedded server lacks).
    CONSTRAINT room_bookings_no_overlap EXCLUDE USING gist (
        int8range(room_id, room_id, '[]') WITH &&, tstzrange(starts_at, ends_at, '[)') WITH &&)
        WHERE (cancelled_at IS NULL)
);

CREATE TABLE meeting_actions (
    id           bigserial PRIMARY KEY,
    booking_id   bigint NOT NULL REFERENCES room_bookings (id),
    description  text NOT NULL CHECK (length(description) BETWEEN 1 AND 2000),
    owner        text NOT NULL,
    due_on       date NOT NULL,
    status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done')),
    done_at      timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX meeting_actions_owner ON meeting_actions (owner, status, due_on);
