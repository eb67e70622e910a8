-- Portable types only (VARCHAR/TEXT/BIGINT); ids are UUIDv7 strings; times are Unix milliseconds.

CREATE TABLE settings (
    name        VARCHAR(64) PRIMARY KEY,
    value       TEXT NOT NULL
);

CREATE TABLE users (
    id            VARCHAR(36) PRIMARY KEY,
    username      VARCHAR(64) NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          VARCHAR(16) NOT NULL,
    disabled      BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id           VARCHAR(36) PRIMARY KEY,
    user_id      VARCHAR(36) NOT NULL REFERENCES users (id),
    name         VARCHAR(100) NOT NULL,
    prefix       VARCHAR(16) NOT NULL,
    key_hash     VARCHAR(64) NOT NULL UNIQUE,
    scopes       TEXT NOT NULL,
    -- comma-separated session ids the key is limited to; NULL: all of its owner's sessions
    sessions     TEXT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NULL,
    last_used_at BIGINT NULL,
    revoked_at   BIGINT NULL
);
CREATE INDEX api_keys_user ON api_keys (user_id);

CREATE TABLE sessions (
    id            VARCHAR(64) PRIMARY KEY,
    owner_id      VARCHAR(36) NOT NULL REFERENCES users (id),
    name          VARCHAR(400) NOT NULL,
    engine        VARCHAR(16) NOT NULL,
    status        VARCHAR(16) NOT NULL,
    status_reason TEXT NULL,
    -- 1 when the session should be online: it is reconnected when the server starts
    auto_connect  BIGINT NOT NULL DEFAULT 0,
    phone         VARCHAR(32) NULL,
    lid           VARCHAR(64) NULL,
    push_name     TEXT NULL,
    webhook_url   TEXT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    connected_at  BIGINT NULL
);
CREATE INDEX sessions_owner ON sessions (owner_id);

CREATE TABLE session_events (
    id          VARCHAR(36) PRIMARY KEY,
    session_id  VARCHAR(64) NOT NULL,
    kind        VARCHAR(32) NOT NULL,
    detail      TEXT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX session_events_session ON session_events (session_id, id);
