-- Customer service (backoffice.support): knowledge base, standard phrases, cases (enquiries, complex questions and
-- complaints) with their history and automatically collected evidence, SLA targets, follow-up visits, surveys,
-- campaigns with opt-out. Discount codes are backoffice.promotions' (orders redeem them; support issues them).
-- Who supervises a department: the escalation target of its overdue cases (owned by backoffice.hr).
ALTER TABLE departments ADD COLUMN supervisor_user_id bigint REFERENCES staff_users (id);

CREATE TABLE kb_categories (
    code     text PRIMARY KEY CHECK (code ~ '^[a-z][a-z0-9_]{1,31}$'),
    name_en  text NOT NULL,
    name_zh  text NOT NULL
);
INSERT INTO kb_categories (code, name_en, name_zh) VALUES
    ('booking', 'Booking and changes', '预订与变更'),
    ('payment', 'Payment, deposit and invoices', '支付、押金与发票'),
    ('vehicle', 'Vehicle use and breakdowns', '车辆使用与故障'),
    ('policy', 'Rental terms and documents', '租车条款与证件'),
    ('accident', 'Accidents, damage and insurance', '事故、损坏与保险');

CREATE TABLE kb_articles (
    id           bigserial PRIMARY KEY,
    category     text NOT NULL REFERENCES kb_categories (code),
    locale       text NOT NULL CHECK (locale IN ('en', 'zh-CN')),
    title        text NOT NULL CHECK (length(title) BETWEEN 1 AND 300),
    body         text NOT NULL CHECK (length(body) BETWEEN 1 AND 20000),
    keywords     text NOT NULL DEFAULT '',
    version      integer NOT NULL DEFAULT 1,
    status       text NOT NULL DEFAULT 'published' CHECK (status IN ('draft', 'published', 'archived')),
    -- Title and body as search terms: English words as written (the english config stems them), Chinese words split
    -- by the segmenter (jieba, backoffice.support.search), since Chinese is written without spaces.
    title_terms  text NOT NULL DEFAULT '',
    body_terms   text NOT NULL DEFAULT '',
    tsv          tsvector GENERATED ALWAYS AS (
                     setweight(to_tsvector('english', title_terms), 'A') ||
                     setweight(to_tsvector('english', keywords), 'B') ||
                     setweight(to_tsvector('english', body_terms), 'C')) STORED,
    usage_count  integer NOT NULL DEFAULT 0,
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX kb_articles_tsv ON kb_articles USING gin (tsv);

CREATE TABLE kb_article_versions (
    article_id  bigint NOT NULL REFERENCES kb_articles (id) ON DELETE CASCADE,
    version     integer NOT NULL,
    title       text NOT NULL,
    body        text NOT NULL,
    edited_by   text NOT NULL,
    edited_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (article_id, version)
);

CREATE TABLE service_phrases (
    id          bigserial PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('greeting', 'closing', 'apology', 'empathy', 'hold', 'follow_up',
                                              'compensation')),
    locale      text NOT NULL CHECK (locale IN ('en', 'zh-CN')),
    text        text NOT NULL CHECK (length(text) BETWEEN 1 AND 2000),
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, locale, text)
);
INSERT INTO service_phrases (kind, locale, text, created_by) VALUES
    ('greeting', 'en', 'Good day, this is {agent} from customer service. How may I help you?', 'migration'),
    ('greeting', 'zh-CN', '您好，我是客服{agent}，请问有什么可以帮您？', 'migration'),
    ('apology', 'en', 'I am sorry for the trouble this has caused you.', 'migration'),
    ('apology', 'zh-CN', '给您带来不便，非常抱歉。', 'migration'),
    ('hold', 'en', 'Please allow me a moment to check the details of your rental.', 'migration'),
    ('hold', 'zh-CN', '请稍等，我为您查询一下租车详情。', 'migration'),
    ('closing', 'en', 'Thank you for contacting us. Have a safe journey.', 'migration'),
    ('closing', 'zh-CN', '感谢您的来电，祝您旅途平安。', 'migration');

-- Service levels per severity (minutes from intake): first response and resolution.
CREATE TABLE sla_targets (
    severity                 text PRIMARY KEY CHECK (severity IN ('critical', 'high', 'medium', 'low')),
    first_response_minutes   integer NOT NULL CHECK (first_response_minutes > 0),
    resolution_minutes       integer NOT NULL CHECK (resolution_minutes > 0),
    CHECK (resolution_minutes >= first_response_minutes)
);
INSERT INTO sla_targets VALUES ('critical', 30, 480), ('high', 120, 1440), ('medium', 480, 4320),
                               ('low', 1440, 10080);

CREATE TABLE support_cases (
    id                   bigserial PRIMARY KEY,
    kind                 text NOT NULL CHECK (kind IN ('enquiry', 'complex', 'complaint')),
    channel              text NOT NULL CHECK (channel IN ('phone', 'email', 'app', 'counter', 'social')),
    customer_id          bigint NOT NULL REFERENCES customers (id),
    order_id             bigint REFERENCES orders (id),
    vehicle_id           bigint REFERENCES vehicles (id),
    category             text NOT NULL,
    severity             text NOT NULL REFERENCES sla_targets (severity),
    subject              text NOT NULL CHECK (length(subject) BETWEEN 1 AND 300),
    request              text NOT NULL DEFAULT '',      -- what the customer asks for
    contact_email        text,
    contact_phone        text,
    locale               text NOT NULL DEFAULT 'en' CHECK (locale IN ('en', 'zh-CN')),
    status               text NOT NULL DEFAULT 'open'
                         CHECK (status IN ('open', 'in_progress', 'proposed', 'resolved', 'closed')),
    department           text NOT NULL DEFAULT 'customer_service' REFERENCES departments (code),
    assignee_user_id     bigint REFERENCES staff_users (id),
    responsible_party    text CHECK (responsible_party IN ('department', 'supplier', 'customer', 'nobody')),
    responsible_detail   text,
    proposal             text,
    customer_accepted    boolean,
    compensation         jsonb,
    first_response_due   timestamptz NOT NULL,
    resolution_due       timestamptz NOT NULL,
    first_response_at    timestamptz,
    resolved_at          timestamptz,
    closed_at            timestamptz,
    escalation_level     integer NOT NULL DEFAULT 0,
    escalated_at         timestamptz,
    reopened             integer NOT NULL DEFAULT 0,
    satisfaction         integer CHECK (satisfaction BETWEEN 1 AND 5),
    created_by           text NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX support_cases_open ON support_cases (status, resolution_due) WHERE status NOT IN ('resolved', 'closed');
CREATE INDEX support_cases_customer ON support_cases (customer_id, created_at DESC);
CREATE INDEX support_cases_assignee ON support_cases (assignee_user_id, created_at);

-- Everything that happened to a case, oldest first: status changes, notes, progress told to the customer,
-- assignment, evidence, escalation, compensation.
CREATE TABLE case_events (
    id            bigserial PRIMARY KEY,
    case_id       bigint NOT NULL REFERENCES support_cases (id) ON DELETE CASCADE,
    at            timestamptz NOT NULL DEFAULT now(),
    actor         text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('status', 'note', 'progress', 'assign', 'evidence', 'escalation',
                                                'compensation', 'responsibility', 'proposal')),
    from_status   text,
    to_status     text,
    body          text NOT NULL DEFAULT '',
    data          jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX case_events_case ON case_events (case_id, id);

-- Evidence the system collected for a case (one row per kind, replaced on refresh).
CREATE TABLE case_evidence (
    case_id       bigint NOT NULL REFERENCES support_cases (id) ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN ('order_timeline', 'trip', 'alerts', 'invoices')),
    data          jsonb NOT NULL,
    collected_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (case_id, kind)
);

-- Follow-up visits: after a case's resolution or after a rental's return (a task list).
CREATE TABLE follow_ups (
    id                bigserial PRIMARY KEY,
    reason            text NOT NULL CHECK (reason IN ('case', 'after_return', 'periodic')),
    customer_id       bigint NOT NULL REFERENCES customers (id),
    case_id           bigint REFERENCES support_cases (id),
    order_id          bigint REFERENCES orders (id),
    due_at            timestamptz NOT NULL,
    status            text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'cancelled')),
    assignee_user_id  bigint REFERENCES staff_users (id),
    done_at           timestamptz,
    done_by           text,
    note              text NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX follow_ups_one_per_return ON follow_ups (order_id) WHERE reason = 'after_return';
CREATE INDEX follow_ups_due ON follow_ups (status, due_at);

-- Satisfaction surveys (1-5) and Net Promoter Score (0-10), with feedback tags for the monthly trend.
CREATE TABLE surveys (
    id            bigserial PRIMARY KEY,
    customer_id   bigint NOT NULL REFERENCES customers (id),
    case_id       bigint REFERENCES support_cases (id),
    order_id      bigint REFERENCES orders (id),
    follow_up_id  bigint REFERENCES follow_ups (id),
    satisfaction  integer CHECK (satisfaction BETWEEN 1 AND 5),
    nps           integer CHECK (nps BETWEEN 0 AND 10),
    comment       text NOT NULL DEFAULT '',
    tags          text[] NOT NULL DEFAULT '{}',
    answered_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (satisfaction IS NOT NULL OR nps IS NOT NULL)
);
CREATE INDEX surveys_answered ON surveys (answered_at);

-- A customer's contact preferences for care campaigns (opt-out, language).
CREATE TABLE customer_contact_prefs (
    customer_id        bigint PRIMARY KEY REFERENCES customers (id) ON DELETE CASCADE,
    marketing_opt_out  boolean NOT NULL DEFAULT false,
    locale             text NOT NULL DEFAULT 'en' CHECK (locale IN ('en', 'zh-CN')),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE campaigns (
    id           bigserial PRIMARY KEY,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind         text NOT NULL CHECK (kind IN ('holiday', 'birthday', 'discount', 'care')),
    segment      jsonb NOT NULL DEFAULT '{}'::jsonb,
    templates    jsonb NOT NULL,                 -- {"en": {"subject", "body"}, "zh-CN": {...}}
    discount     jsonb,                          -- {"percent": 10, "valid_days": 30}
    status       text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'sent')),
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz
);

CREATE TABLE campaign_recipients (
    campaign_id    bigint NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    customer_id    bigint NOT NULL REFERENCES customers (id),
    status         text NOT NULL CHECK (status IN ('queued', 'opted_out', 'no_email')),
    outbox_id      bigint,
    discount_code  text,
    PRIMARY KEY (campaign_id, customer_id)
);

-- Discount codes (backoffice.promotions): issued by campaigns or as compensation, honoured by order pricing.
CREATE TABLE discount_codes (
    code               text PRIMARY KEY CHECK (code ~ '^[A-Z0-9-]{6,40}$'),
    percent            numeric(5, 2) CHECK (percent > 0 AND percent <= 100),
    amount             numeric(12, 2) CHECK (amount > 0),
    customer_id        bigint REFERENCES customers (id),
    source             text NOT NULL,
    valid_until        timestamptz NOT NULL,
    redeemed_at        timestamptz,
    redeemed_order_id  bigint REFERENCES orders (id),
    created_by         text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CHECK ((percent IS NULL) <> (amount IS NULL)),
    CHECK ((redeemed_at IS NULL) = (redeemed_order_id IS NULL))
);
