-- Invoices, payments and the immutable archive of completed orders.
CREATE TABLE invoices (
    id          bigserial PRIMARY KEY,
    number      text NOT NULL UNIQUE,
    order_id    bigint NOT NULL REFERENCES orders (id),
    customer_id bigint NOT NULL REFERENCES customers (id),
    kind        text NOT NULL DEFAULT 'rental' CHECK (kind IN ('rental', 'cancellation')),
    currency    text NOT NULL DEFAULT 'EUR',
    net         numeric(12, 2) NOT NULL,
    vat_rate    numeric(5, 4) NOT NULL,
    vat         numeric(12, 2) NOT NULL,
    gross       numeric(12, 2) NOT NULL,
    status      text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'paid', 'void')),
    issued_at   timestamptz NOT NULL DEFAULT now(),
    paid_at     timestamptz,
    voided_at   timestamptz,
    void_reason text,
    CHECK (gross = net + vat)
);
CREATE UNIQUE INDEX invoices_one_live_per_order_kind ON invoices (order_id, kind) WHERE status <> 'void';
CREATE INDEX invoices_issued ON invoices (issued_at);

CREATE TABLE invoice_lines (
    id          bigserial PRIMARY KEY,
    invoice_id  bigint NOT NULL REFERENCES invoices (id),
    position    integer NOT NULL,
    code        text NOT NULL,
    description text NOT NULL,
    quantity    numeric(12, 2) NOT NULL,
    unit_price  numeric(12, 2) NOT NULL,
    amount      numeric(12, 2) NOT NULL,
    UNIQUE (invoice_id, position)
);

CREATE TABLE payments (
    id          bigserial PRIMARY KEY,
    invoice_id  bigint NOT NULL REFERENCES invoices (id),
    amount      numeric(12, 2) NOT NULL CHECK (amount > 0),
    method      text NOT NULL CHECK (method IN ('card', 'cash', 'bank_transfer', 'paypal')),
    reference   text NOT NULL DEFAULT '',
    paid_at     timestamptz NOT NULL DEFAULT now(),
    recorded_by text NOT NULL
);
CREATE INDEX payments_invoice ON payments (invoice_id);
CREATE INDEX payments_paid_at ON payments (paid_at);

-- Completed orders, frozen: customer, vehicle, times, readings, charges, invoice and payments as JSON.
CREATE TABLE order_archive (
    order_id     bigint PRIMARY KEY REFERENCES orders (id),
    archived_at  timestamptz NOT NULL DEFAULT now(),
    archived_by  text NOT NULL,
    snapshot     jsonb NOT NULL
);

CREATE FUNCTION order_archive_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'order_archive is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER order_archive_no_update BEFORE UPDATE OR DELETE ON order_archive
    FOR EACH ROW EXECUTE FUNCTION order_archive_immutable();
CREATE TRIGGER order_archive_no_truncate BEFORE TRUNCATE ON order_archive
    FOR EACH STATEMENT EXECUTE FUNCTION order_archive_immutable();
