-- A version per kind of cached data (users, webhook endpoints), raised by every change of it, so
-- that the nodes sharing the database drop their copies of what another node changed.
CREATE TABLE cache_versions (
    topic    VARCHAR(64) PRIMARY KEY,
    version  BIGINT NOT NULL
);
