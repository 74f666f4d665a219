-- HR (backoffice.hr): employees linked to staff users, recruitment, leave and attendance. Performance reviews
-- (backoffice.performance) and payroll (backoffice.payroll) below. Personal fields are encrypted by the application
-- (fleetcore/crypto.py: AES-256-GCM bound to table, column and row, key id in the value) and kept in columns named
-- for it: *_enc (ciphertext), *_bidx (blind index).
CREATE TABLE employees (
    id                 bigserial PRIMARY KEY,
    user_id            bigint NOT NULL UNIQUE REFERENCES staff_users (id),
    employee_no        text NOT NULL UNIQUE CHECK (employee_no ~ '^E[0-9]{5,}$'),
    full_name          text NOT NULL CHECK (length(full_name) BETWEEN 1 AND 200),
    department         text NOT NULL REFERENCES departments (code) ON UPDATE CASCADE,
    position           text NOT NULL CHECK (length(position) BETWEEN 1 AND 200),
    manager_id         bigint REFERENCES employees (id),
    hire_date          date NOT NULL,
    contract_type      text NOT NULL CHECK (contract_type IN ('permanent', 'fixed_term', 'part_time', 'intern')),
    contract_end       date,
    status             text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'on_leave', 'terminated')),
    annual_leave_days  integer NOT NULL DEFAULT 10 CHECK (annual_leave_days BETWEEN 0 AND 60),
    payroll_profile    text NOT NULL DEFAULT 'cn',
    -- personal, visible to hr and admin only, encrypted at rest:
    salary_enc         text NOT NULL,            -- {"base": monthly base pay, "allowance": monthly allowances}
    national_id_enc    text,                     -- identity card number
    national_id_bidx   text UNIQUE,              -- blind index of it (exact lookup, duplicates refused)
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (contract_type <> 'fixed_term' OR contract_end IS NOT NULL),
    CHECK (contract_end IS NULL OR contract_end >= hire_date),
    CHECK (manager_id IS NULL OR manager_id <> id)
);
CREATE SEQUENCE employee_no_seq START 10001;

CREATE TABLE job_requisitions (
    id          bigserial PRIMARY KEY,
    department  text NOT NULL REFERENCES departments (code),
    position    text NOT NULL CHECK (length(position) BETWEEN 1 AND 200),
    role        text NOT NULL,                  -- the staff role the hire gets
    headcount   integer NOT NULL CHECK (headcount BETWEEN 1 AND 100),
    reason      text NOT NULL DEFAULT '',
    status      text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'filled', 'cancelled')),
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE candidates (
    id                  bigserial PRIMARY KEY,
    requisition_id      bigint NOT NULL REFERENCES job_requisitions (id),
    full_name           text NOT NULL CHECK (length(full_name) BETWEEN 1 AND 200),
    email               text NOT NULL CHECK (email ~ '^[^@\s]+@[^@\s]+$'),
    phone               text,
    stage               text NOT NULL DEFAULT 'applied'
                        CHECK (stage IN ('applied', 'interviewed', 'tested', 'checked', 'offered', 'hired',
                                         'rejected', 'withdrawn')),
    interview_score     numeric(5, 2) CHECK (interview_score BETWEEN 0 AND 100),
    written_test_score  numeric(5, 2) CHECK (written_test_score BETWEEN 0 AND 100),
    background_check    text CHECK (background_check IN ('clear', 'flagged')),
    offer_enc           text,                   -- the offered pay (personal, encrypted)
    offer_start_date    date,
    employee_id         bigint REFERENCES employees (id),
    notes               text NOT NULL DEFAULT '',
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX candidates_requisition ON candidates (requisition_id);

CREATE TABLE leave_requests (
    id           bigserial PRIMARY KEY,
    employee_id  bigint NOT NULL REFERENCES employees (id),
    kind         text NOT NULL CHECK (kind IN ('annual', 'sick', 'personal', 'marriage', 'maternity', 'unpaid')),
    start_date   date NOT NULL,
    end_date     date NOT NULL,
    days         numeric(5, 1) NOT NULL CHECK (days > 0),
    reason       text NOT NULL DEFAULT '',
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected', 'cancelled')),
    decided_by   text,
    decided_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (end_date >= start_date),
    -- The employee as a one-point int8range (GiST supports it natively; no btree_gist, which the embedded server lacks).
    CONSTRAINT leave_requests_no_overlap EXCLUDE USING gist (
        int8range(employee_id, employee_id, '[]') WITH &&, daterange(start_date, end_date, '[]') WITH &&)
        WHERE (status IN ('pending', 'approved'))
);

CREATE TABLE attendance (
    employee_id     bigint NOT NULL REFERENCES employees (id),
    day             date NOT NULL,
    status          text NOT NULL CHECK (status IN ('present', 'late', 'absent', 'leave', 'holiday')),
    overtime_hours  numeric(4, 1) NOT NULL DEFAULT 0 CHECK (overtime_hours BETWEEN 0 AND 16),
    note            text NOT NULL DEFAULT '',
    PRIMARY KEY (employee_id, day)
);

-- Performance reviews (backoffice.performance): KPIs computed from the system, the manager's rating, an outcome.
CREATE TABLE reviews (
    id              bigserial PRIMARY KEY,
    employee_id     bigint NOT NULL REFERENCES employees (id),
    period_start    date NOT NULL,
    period_end      date NOT NULL,             -- inclusive
    role            text NOT NULL,
    kpis            jsonb NOT NULL,
    manager_rating  integer CHECK (manager_rating BETWEEN 1 AND 5),
    manager_comment text NOT NULL DEFAULT '',
    outcome         text CHECK (outcome IN ('none', 'pay_change', 'promotion', 'bonus')),
    outcome_enc     text,                      -- new pay or bonus amount (personal, encrypted)
    outcome_note    text NOT NULL DEFAULT '',
    status          text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'rated', 'approved')),
    approved_by     text,
    approved_at     timestamptz,
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (period_end >= period_start),
    UNIQUE (employee_id, period_start, period_end)
);

-- Payroll (backoffice.payroll): rules per profile, one run per month, a payslip per employee (encrypted).
CREATE TABLE payroll_profiles (
    code        text PRIMARY KEY,
    name        text NOT NULL,
    rules       jsonb NOT NULL,
    updated_by  text NOT NULL DEFAULT 'migration',
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- China, Shanghai 2024-07 to 2025-06 figures: contribution base 7,384-36,921 CNY a month; employee pension 8 %,
-- medical 2 %, unemployment 0.5 %; employer pension 16 %, medical 10 % (incl. maternity), unemployment 0.5 %,
-- work injury 0.26 %; housing fund 7 % each side; individual income tax: 5,000 CNY a month basic deduction and the
-- cumulative withholding table (IIT Law art. 6; SAT announcement 2018 No. 61); overtime 150 % of the hourly wage
-- (Labour Law art. 44) with 21.75 paid days a month (MOHRSS 2008 No. 3).
INSERT INTO payroll_profiles (code, name, rules) VALUES ('cn', 'China (Shanghai)', '{
  "currency": "CNY",
  "paid_days_per_month": "21.75",
  "hours_per_day": "8",
  "overtime_multiplier": "1.5",
  "contribution_base_min": "7384",
  "contribution_base_max": "36921",
  "employee_rates": {"pension": "0.08", "medical": "0.02", "unemployment": "0.005"},
  "employer_rates": {"pension": "0.16", "medical": "0.10", "unemployment": "0.005", "work_injury": "0.0026"},
  "housing_fund_rate": "0.07",
  "monthly_basic_deduction": "5000",
  "iit_brackets": [["36000", "0.03", "0"], ["144000", "0.10", "2520"], ["300000", "0.20", "16920"],
                   ["420000", "0.25", "31920"], ["660000", "0.30", "52920"], ["960000", "0.35", "85920"],
                   [null, "0.45", "181920"]]
}');

CREATE TABLE payroll_runs (
    id          bigserial PRIMARY KEY,
    period      text NOT NULL UNIQUE CHECK (period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    status      text NOT NULL DEFAULT 'calculated' CHECK (status IN ('calculated', 'posted')),
    employees   integer NOT NULL,
    totals      jsonb NOT NULL,               -- sums over the run (no single person's pay)
    posting     jsonb,                        -- what finance's ledger answered, or why it is pending
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE payslips (
    run_id       bigint NOT NULL REFERENCES payroll_runs (id),
    employee_id  bigint NOT NULL REFERENCES employees (id),
    period       text NOT NULL,
    detail_enc   text NOT NULL,                -- every line of the payslip (personal, encrypted)
    PRIMARY KEY (run_id, employee_id),
    UNIQUE (employee_id, period)
);
