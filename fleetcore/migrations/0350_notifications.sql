-- Messages to people outside the platform (e-mail), kept until sent: an outbox every domain enqueues into in its
-- own transaction and a scheduled job delivers through a pluggable sender (SMTP). A dedupe key makes enqueueing
-- idempotent; failed deliveries are retried with back-off and kept with their last error.
CREATE TABLE outbox (
    id               bigserial PRIMARY KEY,
    channel          text NOT NULL DEFAULT 'email' CHECK (channel IN ('email')),
    recipient        text NOT NULL CHECK (length(recipient) BETWEEN 3 AND 254),
    subject          text NOT NULL,
    body_text        text NOT NULL,
    body_html        text,
    locale           text,
    source           text NOT NULL,                 -- who enqueued it: 'reports', 'support.campaign:12', ...
    dedupe_key       text UNIQUE,
    status           text NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'cancelled')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    created_by       text NOT NULL,
    sent_at          timestamptz
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status = 'queued';

CREATE TABLE outbox_attachments (
    id            bigserial PRIMARY KEY,
    outbox_id     bigint NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    filename      text NOT NULL,
    content_type  text NOT NULL,
    content       bytea NOT NULL
);
CREATE INDEX outbox_attachments_message ON outbox_attachments (outbox_id);

-- Notices to staff inside the platform (a budget variance, an overdue case, a reorder point): to one user or to
-- everyone with a role; each user marks their own as read.
CREATE TABLE staff_notifications (
    id                 bigserial PRIMARY KEY,
    recipient_user_id  bigint REFERENCES staff_users (id) ON DELETE CASCADE,
    recipient_role     text,
    kind               text NOT NULL,
    title              text NOT NULL,
    body               text NOT NULL DEFAULT '',
    data               jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CHECK ((recipient_user_id IS NULL) <> (recipient_role IS NULL))
);
CREATE INDEX staff_notifications_user ON staff_notifications (recipient_user_id, created_at DESC);
CREATE INDEX staff_notifications_role ON staff_notifications (recipient_role, created_at DESC);

CREATE TABLE staff_notification_reads (
    notification_id  bigint NOT NULL REFERENCES staff_notifications (id) ON DELETE CASCADE,
    user_id          bigint NOT NULL REFERENCES staff_users (id) ON DELETE CASCADE,
    read_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (notification_id, user_id)
);
