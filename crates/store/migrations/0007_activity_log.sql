-- The activity and audit log: who did what, when, from where, and what went wrong.
CREATE TABLE activity_log (
    id          VARCHAR(36) PRIMARY KEY,
    -- the tenant the entry belongs to; NULL: the server's own (seen by admins only)
    owner_id    VARCHAR(36) NULL,
    -- the user who acted; NULL: the server itself (a connection dropped, a message failed)
    actor_id    VARCHAR(36) NULL,
    actor       VARCHAR(100) NOT NULL,
    kind        VARCHAR(48) NOT NULL,
    -- info, warning or error
    level       VARCHAR(8) NOT NULL,
    session_id  VARCHAR(64) NULL,
    ip          VARCHAR(64) NULL,
    detail      TEXT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX activity_log_owner ON activity_log (owner_id, created_at);
CREATE INDEX activity_log_created ON activity_log (created_at);
