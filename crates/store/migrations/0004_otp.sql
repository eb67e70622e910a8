-- One-time passwords: verifications (the code only as an HMAC), per-phone failure counters,
-- tenants' message templates and settings.

CREATE TABLE otp_verifications (
    id              VARCHAR(36) PRIMARY KEY,
    owner_id        VARCHAR(36) NOT NULL,
    -- E.164
    phone           VARCHAR(32) NOT NULL,
    session_id      VARCHAR(64) NULL,
    pool            VARCHAR(64) NULL,
    -- the message that carries the current code (push mode)
    message_id      VARCHAR(64) NULL,
    requested_mode  VARCHAR(16) NOT NULL,
    mode            VARCHAR(16) NOT NULL,
    -- HMAC-SHA256(pepper, id || code), hex
    code_mac        VARCHAR(64) NOT NULL,
    code_length     BIGINT NOT NULL,
    locale          VARCHAR(16) NOT NULL,
    brand           VARCHAR(128) NULL,
    template        VARCHAR(64) NULL,
    status          VARCHAR(16) NOT NULL,
    reason          TEXT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    max_attempts    BIGINT NOT NULL,
    sends           BIGINT NOT NULL DEFAULT 1,
    ttl_ms          BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    last_sent_at    BIGINT NOT NULL,
    api_key_id      VARCHAR(36) NULL,
    client_ip       VARCHAR(64) NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    approved_at     BIGINT NULL
);
CREATE INDEX otp_verifications_phone ON otp_verifications (owner_id, phone, status);
CREATE INDEX otp_verifications_message ON otp_verifications (message_id);
CREATE INDEX otp_verifications_expiry ON otp_verifications (status, expires_at);
CREATE INDEX otp_verifications_created ON otp_verifications (created_at);

CREATE TABLE otp_phone_failures (
    owner_id        VARCHAR(36) NOT NULL,
    phone           VARCHAR(32) NOT NULL,
    failures        BIGINT NOT NULL,
    last_failure_at BIGINT NOT NULL,
    PRIMARY KEY (owner_id, phone)
);

CREATE TABLE otp_templates (
    owner_id    VARCHAR(36) NOT NULL,
    name        VARCHAR(64) NOT NULL,
    locale      VARCHAR(16) NOT NULL,
    body        TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (owner_id, name, locale)
);

CREATE TABLE otp_settings (
    owner_id    VARCHAR(36) PRIMARY KEY,
    settings    TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);
