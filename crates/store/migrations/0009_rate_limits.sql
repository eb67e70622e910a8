-- Rate limits that the nodes of a cluster count together: one theoretical arrival time (GCRA)
-- per limited key. A row whose time has passed is a key back at its full allowance.
CREATE TABLE rate_limits (
    name     VARCHAR(255) PRIMARY KEY,
    arrival  BIGINT NOT NULL
);
CREATE INDEX rate_limits_arrival ON rate_limits (arrival);
