-- The outbox: every accepted message, its status history, and what came in.

ALTER TABLE sessions ADD COLUMN pacing TEXT NULL;
ALTER TABLE sessions ADD COLUMN pool VARCHAR(64) NULL;

CREATE TABLE messages (
    id              VARCHAR(64) PRIMARY KEY,
    owner_id        VARCHAR(36) NOT NULL,
    session_id      VARCHAR(64) NOT NULL,
    -- set when the message may move to another session of this pool
    pool            VARCHAR(64) NULL,
    -- order of sending within a session
    seq             BIGINT NOT NULL,
    -- 1: one-time passwords, sent before everything else
    priority        BIGINT NOT NULL DEFAULT 0,
    recipient       VARCHAR(128) NOT NULL,
    kind            VARCHAR(16) NOT NULL,
    content         TEXT NOT NULL,
    status          VARCHAR(16) NOT NULL,
    reason          TEXT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    not_before      BIGINT NOT NULL,
    expires_at      BIGINT NULL,
    lease_until     BIGINT NULL,
    idempotency_key VARCHAR(255) NULL,
    request_hash    VARCHAR(64) NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    sent_at         BIGINT NULL,
    delivered_at    BIGINT NULL,
    read_at         BIGINT NULL
);
CREATE UNIQUE INDEX messages_idempotency ON messages (owner_id, idempotency_key);
CREATE INDEX messages_queue ON messages (session_id, status, priority, seq);
CREATE INDEX messages_owner ON messages (owner_id, created_at);

CREATE TABLE message_events (
    id          VARCHAR(36) PRIMARY KEY,
    message_id  VARCHAR(64) NOT NULL,
    status      VARCHAR(16) NOT NULL,
    reason      TEXT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX message_events_message ON message_events (message_id, id);

CREATE TABLE inbound_messages (
    id           VARCHAR(36) PRIMARY KEY,
    session_id   VARCHAR(64) NOT NULL,
    wa_id        VARCHAR(128) NOT NULL,
    chat         VARCHAR(128) NOT NULL,
    sender_phone VARCHAR(32) NULL,
    sender_lid   VARCHAR(64) NULL,
    push_name    TEXT NULL,
    kind         VARCHAR(16) NOT NULL,
    content      TEXT NOT NULL,
    quoted_id    VARCHAR(128) NULL,
    sent_at      BIGINT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE UNIQUE INDEX inbound_messages_wa_id ON inbound_messages (session_id, wa_id);
CREATE INDEX inbound_messages_chat ON inbound_messages (session_id, chat, sent_at);
