-- Customers and the qualification rules checked when an order is confirmed.
CREATE TABLE customers (
    id                  bigserial PRIMARY KEY,
    first_name          text NOT NULL CHECK (length(first_name) BETWEEN 1 AND 100),
    last_name           text NOT NULL CHECK (length(last_name) BETWEEN 1 AND 100),
    email               text CHECK (email IS NULL OR email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$'),
    phone               text CHECK (phone IS NULL OR phone ~ '^\+?[0-9 ()/-]{5,32}$'),
    address             text NOT NULL DEFAULT '',
    date_of_birth       date,
    id_document_type    text CHECK (id_document_type IS NULL OR id_document_type IN ('id_card', 'passport', 'residence_permit')),
    id_document_number  text,
    licence_number      text,
    licence_class       text,               -- e.g. 'B' or 'B,BE' (EU Directive 2006/126/EC categories)
    licence_expiry      date,
    blacklisted         boolean NOT NULL DEFAULT false,
    blacklist_reason    text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (NOT blacklisted OR coalesce(length(blacklist_reason), 0) > 0)
);
CREATE UNIQUE INDEX customers_email ON customers (lower(email)) WHERE email IS NOT NULL;
CREATE INDEX customers_name ON customers (lower(last_name), lower(first_name));
CREATE INDEX customers_licence ON customers (licence_number);

-- Minimum driver age and required licence category per vehicle class (typical rental-industry policy;
-- all classes here are passenger cars or vans up to 3.5 t, i.e. EU category B).
CREATE TABLE qualification_rules (
    vehicle_class          text PRIMARY KEY
                           CHECK (vehicle_class IN ('economy', 'compact', 'midsize', 'fullsize', 'suv', 'van', 'premium', 'ev')),
    min_age                integer NOT NULL CHECK (min_age BETWEEN 18 AND 99),
    required_licence_class text NOT NULL DEFAULT 'B'
);
INSERT INTO qualification_rules (vehicle_class, min_age) VALUES
    ('economy', 21), ('compact', 21), ('midsize', 21), ('fullsize', 23),
    ('suv', 25), ('van', 25), ('premium', 25), ('ev', 25);
