-- HR: departments become a table (HR may add them); tokens issued before a password reset, role change or
-- deactivation stop working (staff_users.tokens_valid_after).
CREATE TABLE departments (
    code        text PRIMARY KEY CHECK (code ~ '^[a-z][a-z0-9_]{1,31}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO departments (code, name) VALUES
    ('operations', 'Operations'),
    ('customer_service', 'Customer service'),
    ('technology', 'Technology'),
    ('finance', 'Finance'),
    ('administration', 'Administration and HR');

ALTER TABLE staff_users DROP CONSTRAINT staff_users_department_check;
ALTER TABLE staff_users ADD CONSTRAINT staff_users_department_fkey
    FOREIGN KEY (department) REFERENCES departments (code) ON UPDATE CASCADE;
ALTER TABLE staff_users
    ADD COLUMN email               text CHECK (email IS NULL OR email ~ '^[^@\s]+@[^@\s]+$'),
    ADD COLUMN tokens_valid_after  timestamptz;
CREATE INDEX audit_log_actor ON audit_log (actor, at DESC);
CREATE INDEX audit_log_action ON audit_log (action, at DESC);
