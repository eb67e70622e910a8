-- Webhook endpoints, the events sent to them, and every delivery attempt.

CREATE TABLE webhooks (
    id          VARCHAR(36) PRIMARY KEY,
    owner_id    VARCHAR(36) NOT NULL,
    -- NULL: every session of the owner
    session_id  VARCHAR(64) NULL,
    url         TEXT NOT NULL,
    -- comma-separated event types; `*` and `prefix.*` patterns allowed
    events      TEXT NOT NULL,
    -- Standard Webhooks signing secret (whsec_…); needed in clear to sign
    secret      TEXT NOT NULL,
    enabled     BIGINT NOT NULL DEFAULT 1,
    -- 1: created through a session's webhook_url (seed-compatible routes)
    from_session_url BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX webhooks_owner ON webhooks (owner_id);

CREATE TABLE webhook_events (
    id          VARCHAR(40) PRIMARY KEY,
    owner_id    VARCHAR(36) NOT NULL,
    session_id  VARCHAR(64) NULL,
    type        VARCHAR(64) NOT NULL,
    payload     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX webhook_events_owner ON webhook_events (owner_id, created_at);

CREATE TABLE webhook_deliveries (
    id              VARCHAR(40) PRIMARY KEY,
    webhook_id      VARCHAR(36) NOT NULL,
    event_id        VARCHAR(40) NOT NULL,
    seq             BIGINT NOT NULL,
    -- pending | delivered | dead
    status          VARCHAR(16) NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_status     BIGINT NULL,
    last_error      TEXT NULL,
    created_at      BIGINT NOT NULL,
    finished_at     BIGINT NULL
);
CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (webhook_id, status, seq);

CREATE TABLE webhook_attempts (
    id           VARCHAR(36) PRIMARY KEY,
    delivery_id  VARCHAR(40) NOT NULL,
    attempt      BIGINT NOT NULL,
    status_code  BIGINT NULL,
    error        TEXT NULL,
    duration_ms  BIGINT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, attempt);
