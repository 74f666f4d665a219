-- Training (backoffice.training): courses, sessions (the training plan), attendance, certifications with expiry,
-- and which certification a maintenance task type requires of the technician who closes its work order.
CREATE TABLE courses (
    id               bigserial PRIMARY KEY,
    code             text NOT NULL UNIQUE CHECK (code ~ '^[a-z][a-z0-9_]{1,39}$'),
    title            text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    certifies        text CHECK (certifies ~ '^[a-z][a-z0-9_]{1,39}$'),   -- the certification passing grants
    validity_months  integer CHECK (validity_months BETWEEN 1 AND 120),
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((certifies IS NULL) = (validity_months IS NULL))
);

CREATE TABLE training_sessions (
    id          bigserial PRIMARY KEY,
    course_id   bigint NOT NULL REFERENCES courses (id),
    department  text REFERENCES departments (code),
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    trainer     text NOT NULL DEFAULT '',
    location    text NOT NULL DEFAULT '',
    capacity    integer NOT NULL DEFAULT 20 CHECK (capacity BETWEEN 1 AND 500),
    CHECK (ends_at > starts_at)
);

CREATE TABLE training_attendance (
    session_id  bigint NOT NULL REFERENCES training_sessions (id),
    user_id     bigint NOT NULL REFERENCES staff_users (id),
    attended    boolean NOT NULL,
    passed      boolean NOT NULL DEFAULT false,
    score       numeric(5, 2) CHECK (score BETWEEN 0 AND 100),
    recorded_by text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, user_id),
    CHECK (attended OR NOT passed)
);

CREATE TABLE certifications (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES staff_users (id),
    code        text NOT NULL CHECK (code ~ '^[a-z][a-z0-9_]{1,39}$'),
    issued_on   date NOT NULL,
    expires_on  date NOT NULL,
    source      text NOT NULL CHECK (source IN ('course', 'external')),
    session_id  bigint REFERENCES training_sessions (id),
    revoked_at  timestamptz,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (expires_on > issued_on)
);
CREATE INDEX certifications_user ON certifications (user_id, code, expires_on DESC);

CREATE TABLE certification_requirements (
    task_kind      text PRIMARY KEY,            -- a maintenance kind (service, repair, inspection, tyres, damage, recall)
    certification  text NOT NULL CHECK (certification ~ '^[a-z][a-z0-9_]{1,39}$'),
    updated_by     text NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
