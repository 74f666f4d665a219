-- Finance: company profile with dated tax rates, a double-entry ledger (chart of accounts, monthly periods,
-- journal entries and lines), the receivables and payables sub-ledgers (credit notes, refunds, deposits,
-- supplier bills), fixed assets, budgets and bank statements. Owner: backoffice.finance.
--
-- The ledger's rules live here, where no code path can skip them:
--   * an entry balances (sum of signed line amounts = 0) and has at least two lines: deferred constraint triggers,
--     checked at commit, so the lines of one entry can be inserted one by one;
--   * posted entries and lines are immutable (no UPDATE, DELETE or TRUNCATE); corrections are reversals;
--   * lines are added only in the transaction that created their entry;
--   * an entry goes only into an open period, checked under a share lock on the period row, so closing a period
--     (which takes that row FOR UPDATE) waits for postings in flight and refuses later ones.

-- ---- company profile, dated tax rates, invoice series --------------------------------------------------------

CREATE TABLE fin_company_profile (
    id            integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    country       text NOT NULL CHECK (country IN ('DE', 'CN')),
    company_name  text NOT NULL CHECK (length(company_name) BETWEEN 1 AND 200),
    currency      text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    minor_unit    integer NOT NULL CHECK (minor_unit BETWEEN 0 AND 3),
    timezone      text NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
INSERT INTO fin_company_profile (country, company_name, currency, minor_unit, timezone)
VALUES ('DE', 'Fleet Mobility GmbH', 'EUR', 2, 'Europe/Berlin');

-- A rate applies from valid_from until the next row of the same country and category.
CREATE TABLE fin_tax_rates (
    country     text NOT NULL CHECK (country IN ('DE', 'CN')),
    category    text NOT NULL CHECK (category ~ '^[a-z_]{2,32}$'),
    rate        numeric(6, 4) NOT NULL CHECK (rate >= 0 AND rate < 1),
    valid_from  date NOT NULL,
    note        text NOT NULL DEFAULT '',
    created_by  text NOT NULL DEFAULT 'migration',
    PRIMARY KEY (country, category, valid_from)
);
INSERT INTO fin_tax_rates (country, category, rate, valid_from, note) VALUES
    -- § 12 (1) UStG; the temporary 16 % of the second half of 2020 (Zweites Corona-Steuerhilfegesetz).
    ('DE', 'standard', 0.19, '2007-01-01', '§ 12 (1) UStG'),
    ('DE', 'standard', 0.16, '2020-07-01', 'Zweites Corona-Steuerhilfegesetz, 1 Jul - 31 Dec 2020'),
    ('DE', 'standard', 0.19, '2021-01-01', '§ 12 (1) UStG'),
    -- Damages are compensation, not a supply: outside the scope of VAT (UStAE 1.3 (1)).
    ('DE', 'non_taxable', 0, '2007-01-01', 'damages: no supply (UStAE 1.3 (1))'),
    -- China: leasing of tangible movable property 16 % from 1 May 2018, 13 % from 1 April 2019
    -- (MOF/SAT/GAC announcement 2019 No. 39); modern services 6 % (Caishui [2016] No. 36); goods and repair 13 %.
    ('CN', 'leasing', 0.16, '2018-05-01', 'Caishui [2018] No. 32'),
    ('CN', 'leasing', 0.13, '2019-04-01', 'MOF/SAT/GAC 2019 No. 39'),
    ('CN', 'services', 0.06, '2016-05-01', 'Caishui [2016] No. 36'),
    ('CN', 'goods', 0.16, '2018-05-01', 'Caishui [2018] No. 32'),
    ('CN', 'goods', 0.13, '2019-04-01', 'MOF/SAT/GAC 2019 No. 39'),
    ('CN', 'non_taxable', 0, '2016-05-01', 'compensation without a taxable supply');

-- Gap-free invoice numbers per series and year (China: one fapiao series per tax category and for credit notes).
CREATE TABLE fin_invoice_series (
    country   text NOT NULL,
    series    text NOT NULL CHECK (series ~ '^[A-Z]{2,8}$'),
    year      integer NOT NULL,
    last_no   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (country, series, year)
);

-- ---- chart of accounts ---------------------------------------------------------------------------------------

CREATE TABLE fin_accounts (
    code         text PRIMARY KEY CHECK (code ~ '^[0-9]{3,6}$'),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    name_zh      text NOT NULL DEFAULT '',
    type         text NOT NULL CHECK (type IN ('asset', 'liability', 'equity', 'revenue', 'expense')),
    parent_code  text REFERENCES fin_accounts (code),
    postable     boolean NOT NULL DEFAULT true,       -- group accounts (headings) take no lines
    cash         boolean NOT NULL DEFAULT false,      -- cash and bank: the cash-flow statement's accounts
    cash_flow    text CHECK (cash_flow IN ('operating', 'investing', 'financing')),  -- class of a counter-account
    active       boolean NOT NULL DEFAULT true,
    created_by   text NOT NULL DEFAULT 'migration',
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (parent_code IS NULL OR parent_code <> code),
    CHECK (NOT cash OR type = 'asset')
);
CREATE INDEX fin_accounts_parent ON fin_accounts (parent_code);

-- A child has its parent's type, and a group account (not postable) is never a line's account.
CREATE FUNCTION fin_account_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE p fin_accounts;
BEGIN
    IF NEW.parent_code IS NOT NULL THEN
        SELECT * INTO p FROM fin_accounts WHERE code = NEW.parent_code;
        IF p.type <> NEW.type THEN
            RAISE EXCEPTION 'account % (%) cannot sit under % (%)', NEW.code, NEW.type, p.code, p.type
                USING ERRCODE = 'check_violation';
        END IF;
        IF p.postable THEN
            RAISE EXCEPTION 'account % is postable and cannot have sub-accounts', p.code
                USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.type <> OLD.type THEN
        RAISE EXCEPTION 'the type of account % cannot change', OLD.code USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER fin_accounts_check BEFORE INSERT OR UPDATE ON fin_accounts
    FOR EACH ROW EXECUTE FUNCTION fin_account_check();

INSERT INTO fin_accounts (code, name, name_zh, type, parent_code, postable, cash, cash_flow) VALUES
    ('1000', 'Assets', '资产', 'asset', NULL, false, false, NULL),
    ('1001', 'Cash and bank', '货币资金', 'asset', '1000', false, false, NULL),
    ('1010', 'Cash on hand', '库存现金', 'asset', '1001', true, true, NULL),
    ('1020', 'Bank account', '银行存款', 'asset', '1001', true, true, NULL),
    ('1100', 'Receivables', '应收款项', 'asset', '1000', false, false, NULL),
    ('1110', 'Trade receivables (customers)', '应收账款', 'asset', '1100', true, false, 'operating'),
    ('1200', 'Input VAT', '应交税费—进项税额', 'asset', '1000', true, false, 'operating'),
    ('1500', 'Fixed assets', '固定资产', 'asset', '1000', false, false, NULL),
    ('1510', 'Vehicles at cost', '运输设备原值', 'asset', '1500', true, false, 'investing'),
    ('1519', 'Accumulated depreciation, vehicles', '累计折旧—运输设备', 'asset', '1500', true, false, 'investing'),
    ('2000', 'Liabilities', '负债', 'liability', NULL, false, false, NULL),
    ('2100', 'Trade payables (suppliers)', '应付账款', 'liability', '2000', true, false, 'operating'),
    ('2200', 'Output VAT', '应交税费—销项税额', 'liability', '2000', true, false, 'operating'),
    ('2300', 'Customer deposits held', '其他应付款—押金', 'liability', '2000', true, false, 'operating'),
    ('2400', 'Payroll liabilities', '应付职工薪酬', 'liability', '2000', false, false, NULL),
    ('2410', 'Net wages payable', '应付工资', 'liability', '2400', true, false, 'operating'),
    ('2420', 'Payroll taxes and social security payable', '应付社会保险及个税', 'liability', '2400', true, false, 'operating'),
    ('2900', 'Bank loans', '借款', 'liability', '2000', true, false, 'financing'),
    ('3000', 'Equity', '所有者权益', 'equity', NULL, false, false, NULL),
    ('3100', 'Share capital', '实收资本', 'equity', '3000', true, false, 'financing'),
    ('3200', 'Retained earnings', '未分配利润', 'equity', '3000', true, false, 'financing'),
    ('4000', 'Revenue', '收入', 'revenue', NULL, false, false, NULL),
    ('4100', 'Rental revenue', '租赁收入', 'revenue', '4000', true, false, 'operating'),
    ('4200', 'Fuel and charging recharged', '燃油及充电收入', 'revenue', '4000', true, false, 'operating'),
    ('4300', 'Cancellation and no-show fees', '取消及未取车费', 'revenue', '4000', true, false, 'operating'),
    ('4400', 'Damage recoveries', '车损赔偿收入', 'revenue', '4000', true, false, 'operating'),
    ('4900', 'Other income', '其他收入', 'revenue', '4000', true, false, 'operating'),
    ('4950', 'Credit notes and allowances', '销售折让', 'revenue', '4000', true, false, 'operating'),
    ('5000', 'Operating expenses', '营业成本及费用', 'expense', NULL, false, false, NULL),
    ('5100', 'Maintenance parts', '维修配件', 'expense', '5000', true, false, 'operating'),
    ('5200', 'Maintenance labour', '维修工时', 'expense', '5000', true, false, 'operating'),
    ('5300', 'Fuel and charging', '燃油及充电', 'expense', '5000', true, false, 'operating'),
    ('5400', 'Depreciation, vehicles', '折旧—运输设备', 'expense', '5000', true, false, 'operating'),
    ('6000', 'Personnel expenses', '职工薪酬', 'expense', NULL, false, false, NULL),
    ('6100', 'Wages and salaries', '工资', 'expense', '6000', true, false, 'operating'),
    ('6200', 'Employer social security', '社会保险费(单位)', 'expense', '6000', true, false, 'operating'),
    ('6900', 'Other operating expenses', '其他费用', 'expense', '5000', true, false, 'operating');

-- ---- periods and the journal ---------------------------------------------------------------------------------

CREATE TABLE fin_periods (
    period      date PRIMARY KEY CHECK (extract(day FROM period) = 1),
    status      text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    closed_at   timestamptz,
    closed_by   text,
    CHECK ((status = 'closed') = (closed_at IS NOT NULL))
);

-- A closed month's totals per account, and its cash movements per class and kind, written by the close (the month
-- can take no more postings, so they stay exact; a reopen deletes them). Statements read closed history from here and
-- scan lines only for open months.
CREATE TABLE fin_period_balances (
    period        date NOT NULL REFERENCES fin_periods (period),
    account_code  text NOT NULL REFERENCES fin_accounts (code),
    debit         numeric(16, 2) NOT NULL,
    credit        numeric(16, 2) NOT NULL,
    PRIMARY KEY (period, account_code)
);
CREATE TABLE fin_period_cash_flows (
    period     date NOT NULL REFERENCES fin_periods (period),
    cash_flow  text NOT NULL,
    kind       text NOT NULL,
    inflow     numeric(16, 2) NOT NULL,
    outflow    numeric(16, 2) NOT NULL,
    PRIMARY KEY (period, cash_flow, kind)
);

CREATE TABLE fin_journal_entries (
    id           bigserial PRIMARY KEY,
    entry_date   date NOT NULL,
    period       date NOT NULL,   -- the month of entry_date (set by the period trigger)
    kind         text NOT NULL CHECK (kind ~ '^[a-z_]{2,40}$'),
    memo         text NOT NULL DEFAULT '' CHECK (length(memo) <= 500),
    currency     text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    -- the business event this entry records (idempotency: one entry per event, ever)
    source_key   text UNIQUE CHECK (length(source_key) BETWEEN 1 AND 200),
    reverses_id  bigint UNIQUE REFERENCES fin_journal_entries (id),
    posted_by    text NOT NULL,
    posted_at    timestamptz NOT NULL DEFAULT now(),
    txid         xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX fin_journal_entries_date ON fin_journal_entries (entry_date, id);
CREATE INDEX fin_journal_entries_kind ON fin_journal_entries (kind, entry_date);

-- Signed amounts: debit > 0, credit < 0 (one column makes every balance a plain sum). entry_date is copied from
-- the entry so statements scan lines alone; dimensions make profitability and budgets possible.
CREATE TABLE fin_journal_lines (
    id            bigserial PRIMARY KEY,
    entry_id      bigint NOT NULL REFERENCES fin_journal_entries (id),
    line_no       integer NOT NULL,
    entry_date    date NOT NULL,
    entry_kind    text NOT NULL DEFAULT '',   -- the entry's kind, copied like its date (cash flow by kind)
    account_code  text NOT NULL REFERENCES fin_accounts (code),
    amount        numeric(14, 2) NOT NULL CHECK (amount <> 0),
    cash_flow     text CHECK (cash_flow IN ('operating', 'investing', 'financing')),
    vehicle_id    bigint,
    station_id    bigint,
    department    text,
    order_id      bigint,
    invoice_id    bigint,
    customer_id   bigint,
    payable_id    bigint,
    memo          text NOT NULL DEFAULT '',
    UNIQUE (entry_id, line_no)
);
CREATE INDEX fin_journal_lines_date_account ON fin_journal_lines (entry_date, account_code) INCLUDE (amount);
CREATE INDEX fin_journal_lines_account_date ON fin_journal_lines (account_code, entry_date) INCLUDE (amount);
CREATE INDEX fin_journal_lines_vehicle ON fin_journal_lines (vehicle_id, entry_date) WHERE vehicle_id IS NOT NULL;

CREATE FUNCTION fin_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: posted entries are corrected by reversal, not %', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER fin_journal_entries_immutable BEFORE UPDATE OR DELETE ON fin_journal_entries
    FOR EACH ROW EXECUTE FUNCTION fin_immutable();
CREATE TRIGGER fin_journal_entries_no_truncate BEFORE TRUNCATE ON fin_journal_entries
    FOR EACH STATEMENT EXECUTE FUNCTION fin_immutable();
CREATE TRIGGER fin_journal_lines_immutable BEFORE UPDATE OR DELETE ON fin_journal_lines
    FOR EACH ROW EXECUTE FUNCTION fin_immutable();
CREATE TRIGGER fin_journal_lines_no_truncate BEFORE TRUNCATE ON fin_journal_lines
    FOR EACH STATEMENT EXECUTE FUNCTION fin_immutable();

-- An entry goes into an open period only; the share lock on the period row makes a concurrent close wait.
CREATE FUNCTION fin_entry_period_open() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE st text;
BEGIN
    NEW.period := date_trunc('month', NEW.entry_date::timestamp)::date;
    INSERT INTO fin_periods (period) VALUES (NEW.period) ON CONFLICT DO NOTHING;
    SELECT status INTO st FROM fin_periods WHERE period = NEW.period FOR SHARE;
    IF st <> 'open' THEN
        RAISE EXCEPTION 'period % is closed', to_char(NEW.period, 'YYYY-MM')
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER fin_journal_entries_period_open BEFORE INSERT ON fin_journal_entries
    FOR EACH ROW EXECUTE FUNCTION fin_entry_period_open();

-- Lines: only into an entry of this transaction, only on postable accounts, dated (and kinded) as their entry.
CREATE FUNCTION fin_line_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE e fin_journal_entries; a fin_accounts;
BEGIN
    SELECT * INTO e FROM fin_journal_entries WHERE id = NEW.entry_id;
    IF e.txid <> pg_current_xact_id() THEN
        RAISE EXCEPTION 'entry % is posted; lines cannot be added to it', NEW.entry_id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT * INTO a FROM fin_accounts WHERE code = NEW.account_code;
    IF NOT a.postable OR NOT a.active THEN
        RAISE EXCEPTION 'account % is a group or inactive account', NEW.account_code
            USING ERRCODE = 'check_violation';
    END IF;
    NEW.entry_date := e.entry_date;
    NEW.entry_kind := e.kind;
    RETURN NEW;
END $$;
CREATE TRIGGER fin_journal_lines_check BEFORE INSERT ON fin_journal_lines
    FOR EACH ROW EXECUTE FUNCTION fin_line_check();

-- Balance, checked at commit (deferred): at least two lines, debits = credits.
CREATE FUNCTION fin_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE n integer; s numeric; eid bigint;
BEGIN
    -- (two statements: PL/pgSQL resolves NEW's fields only in the branch it runs)
    IF TG_TABLE_NAME = 'fin_journal_entries' THEN
        eid := NEW.id;
    ELSE
        eid := NEW.entry_id;
    END IF;
    SELECT count(*), coalesce(sum(amount), 0) INTO n, s FROM fin_journal_lines WHERE entry_id = eid;
    IF n < 2 OR s <> 0 THEN
        RAISE EXCEPTION 'journal entry % is unbalanced: % line(s), debits - credits = %', eid, n, s
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER fin_journal_entries_balanced AFTER INSERT ON fin_journal_entries
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fin_entry_balanced();
CREATE CONSTRAINT TRIGGER fin_journal_lines_balanced AFTER INSERT ON fin_journal_lines
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fin_entry_balanced();

-- ---- receivables: invoice dimensions, credit notes, refunds, deposits ----------------------------------------

ALTER TABLE invoices DROP CONSTRAINT invoices_kind_check;
ALTER TABLE invoices ADD CONSTRAINT invoices_kind_check CHECK (kind IN ('rental', 'cancellation', 'damage'));
ALTER TABLE invoices ALTER COLUMN vat_rate DROP NOT NULL;  -- NULL: lines carry different rates (China)
ALTER TABLE invoices
    ADD COLUMN vehicle_id  bigint,
    ADD COLUMN station_id  bigint,
    ADD COLUMN credited    numeric(12, 2) NOT NULL DEFAULT 0 CHECK (credited >= 0),
    ADD COLUMN refunded    numeric(12, 2) NOT NULL DEFAULT 0 CHECK (refunded >= 0),
    ADD CONSTRAINT invoices_credit_le_gross CHECK (credited <= gross);
ALTER TABLE invoice_lines
    ADD COLUMN tax_category text,
    ADD COLUMN vat_rate     numeric(6, 4);

ALTER TABLE payments DROP CONSTRAINT payments_method_check;
ALTER TABLE payments ADD CONSTRAINT payments_method_check
    CHECK (method IN ('card', 'cash', 'bank_transfer', 'paypal', 'deposit'));
ALTER TABLE payments
    ADD COLUMN idempotency_key text UNIQUE,
    ADD COLUMN reconciled_at   timestamptz;
CREATE INDEX payments_reference ON payments (reference) WHERE reconciled_at IS NULL;

CREATE TABLE fin_credit_notes (
    id          bigserial PRIMARY KEY,
    number      text NOT NULL UNIQUE,
    invoice_id  bigint NOT NULL REFERENCES invoices (id),
    net         numeric(12, 2) NOT NULL CHECK (net >= 0),
    vat         numeric(12, 2) NOT NULL CHECK (vat >= 0),
    gross       numeric(12, 2) NOT NULL CHECK (gross > 0),
    reason      text NOT NULL,
    issued_at   timestamptz NOT NULL DEFAULT now(),
    issued_by   text NOT NULL,
    CHECK (gross = net + vat)
);
CREATE INDEX fin_credit_notes_invoice ON fin_credit_notes (invoice_id);

CREATE TABLE fin_refunds (
    id           bigserial PRIMARY KEY,
    invoice_id   bigint NOT NULL REFERENCES invoices (id),
    amount       numeric(12, 2) NOT NULL CHECK (amount > 0),
    method       text NOT NULL CHECK (method IN ('card', 'cash', 'bank_transfer', 'paypal')),
    reference    text NOT NULL DEFAULT '',
    refunded_at  timestamptz NOT NULL DEFAULT now(),
    recorded_by  text NOT NULL
);
CREATE INDEX fin_refunds_invoice ON fin_refunds (invoice_id);

-- A rental deposit: held at pickup, then applied to the rental invoice and/or released at return.
CREATE TABLE fin_deposits (
    id           bigserial PRIMARY KEY,
    order_id     bigint NOT NULL UNIQUE,
    customer_id  bigint NOT NULL,
    amount       numeric(12, 2) NOT NULL CHECK (amount > 0),
    method       text NOT NULL CHECK (method IN ('card', 'cash', 'bank_transfer', 'paypal')),
    status       text NOT NULL DEFAULT 'held' CHECK (status IN ('held', 'settled')),
    applied      numeric(12, 2) NOT NULL DEFAULT 0 CHECK (applied >= 0),
    released     numeric(12, 2) NOT NULL DEFAULT 0 CHECK (released >= 0),
    held_at      timestamptz NOT NULL DEFAULT now(),
    settled_at   timestamptz,
    CHECK (applied + released <= amount),
    CHECK ((status = 'settled') = (settled_at IS NOT NULL AND applied + released = amount))
);

-- ---- payables, fixed assets ------------------------------------------------------------------------------

CREATE TABLE fin_payables (
    id          bigserial PRIMARY KEY,
    supplier    text NOT NULL CHECK (length(supplier) BETWEEN 1 AND 200),
    reference   text NOT NULL CHECK (length(reference) BETWEEN 1 AND 200),
    source      text NOT NULL CHECK (source IN ('maintenance', 'procurement', 'fuel', 'manual')),
    cash_flow   text NOT NULL DEFAULT 'operating' CHECK (cash_flow IN ('operating', 'investing')),
    net         numeric(12, 2) NOT NULL CHECK (net >= 0),
    vat         numeric(12, 2) NOT NULL CHECK (vat >= 0),
    gross       numeric(12, 2) NOT NULL CHECK (gross > 0),
    paid        numeric(12, 2) NOT NULL DEFAULT 0 CHECK (paid >= 0),
    bill_date   date NOT NULL,
    due_date    date NOT NULL,
    status      text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'paid')),
    vehicle_id  bigint,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (gross = net + vat),
    CHECK (paid <= gross),
    CHECK ((status = 'paid') = (paid = gross)),
    CHECK (due_date >= bill_date),
    UNIQUE (supplier, reference)
);
CREATE INDEX fin_payables_open ON fin_payables (due_date) WHERE status = 'open';

CREATE TABLE fin_supplier_payments (
    id          bigserial PRIMARY KEY,
    payable_id  bigint NOT NULL REFERENCES fin_payables (id),
    amount      numeric(12, 2) NOT NULL CHECK (amount > 0),
    paid_on     date NOT NULL,
    reference   text NOT NULL DEFAULT '',
    recorded_by text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE fin_fixed_assets (
    id                  bigserial PRIMARY KEY,
    vehicle_id          bigint NOT NULL UNIQUE,
    cost                numeric(12, 2) NOT NULL CHECK (cost > 0),
    residual_value      numeric(12, 2) NOT NULL DEFAULT 0 CHECK (residual_value >= 0),
    useful_life_months  integer NOT NULL CHECK (useful_life_months BETWEEN 1 AND 600),
    first_month         date NOT NULL CHECK (extract(day FROM first_month) = 1),
    station_id          bigint,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (residual_value < cost)
);

-- ---- budgets -----------------------------------------------------------------------------------------------

-- Every version of a budget line is kept; the current one is the highest version.
CREATE TABLE fin_budget_lines (
    account_code  text NOT NULL REFERENCES fin_accounts (code),
    department    text NOT NULL CHECK (department ~ '^[a-z][a-z0-9_]{1,31}$'),
    period        date NOT NULL CHECK (extract(day FROM period) = 1),
    version       integer NOT NULL CHECK (version >= 1),
    amount        numeric(14, 2) NOT NULL CHECK (amount >= 0),
    request_id    bigint,
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_code, department, period, version)
);
CREATE TRIGGER fin_budget_lines_immutable BEFORE UPDATE OR DELETE ON fin_budget_lines
    FOR EACH ROW EXECUTE FUNCTION fin_immutable();

CREATE TABLE fin_budget_requests (
    id            bigserial PRIMARY KEY,
    account_code  text NOT NULL REFERENCES fin_accounts (code),
    department    text NOT NULL,
    period        date NOT NULL,
    base_version  integer NOT NULL,
    amount        numeric(14, 2) NOT NULL CHECK (amount >= 0),
    reason        text NOT NULL CHECK (length(reason) BETWEEN 3 AND 1000),
    status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected')),
    requested_by  text NOT NULL,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    decided_by    text,
    decided_at    timestamptz,
    note          text NOT NULL DEFAULT ''
);

-- One notice per budget line, version and size of overrun; kept as the record of what finance was told.
CREATE TABLE fin_budget_alerts (
    id            bigserial PRIMARY KEY,
    account_code  text NOT NULL,
    department    text NOT NULL,
    period        date NOT NULL,
    version       integer NOT NULL,
    budget        numeric(14, 2) NOT NULL,
    actual        numeric(14, 2) NOT NULL,
    variance_pct  numeric(10, 2),
    notification_id bigint,
    raised_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_code, department, period, version)
);

-- ---- bank statements ---------------------------------------------------------------------------------------

CREATE TABLE fin_bank_statements (
    id           bigserial PRIMARY KEY,
    account_code text NOT NULL REFERENCES fin_accounts (code),
    filename     text NOT NULL DEFAULT '',
    lines        integer NOT NULL,
    imported_by  text NOT NULL,
    imported_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE fin_bank_lines (
    id            bigserial PRIMARY KEY,
    statement_id  bigint NOT NULL REFERENCES fin_bank_statements (id),
    line_no       integer NOT NULL,
    booked_on     date NOT NULL,
    amount        numeric(14, 2) NOT NULL CHECK (amount <> 0),
    reference     text NOT NULL,
    counterparty  text NOT NULL DEFAULT '',
    fingerprint   text NOT NULL UNIQUE,   -- a line seen in an earlier import is not imported again
    status        text NOT NULL CHECK (status IN ('matched', 'unmatched', 'resolved')),
    payment_id    bigint,
    supplier_payment_id bigint,
    note          text NOT NULL DEFAULT ''
);
CREATE INDEX fin_bank_lines_unmatched ON fin_bank_lines (booked_on) WHERE status = 'unmatched';
