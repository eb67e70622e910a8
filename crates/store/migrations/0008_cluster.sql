-- Nodes of a cluster sharing this database, and leases: one holder at a time of a named duty.
CREATE TABLE nodes (
    id            VARCHAR(128) PRIMARY KEY,
    started_at    BIGINT NOT NULL,
    -- the node's last sign of life; a node silent for longer than its lease is gone
    heartbeat_at  BIGINT NOT NULL,
    version       VARCHAR(32) NOT NULL
);
CREATE TABLE leases (
    name        VARCHAR(128) PRIMARY KEY,
    holder      VARCHAR(128) NOT NULL,
    -- goes up by one whenever another node takes the lease
    epoch       BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
