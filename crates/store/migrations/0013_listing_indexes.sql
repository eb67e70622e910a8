-- Listings and counts read only the rows they show, however long the history: without these,
-- an administrator's listing of every tenant, a session's listing and its hourly and daily caps
-- read every message ever kept. Each index costs every write that touches its columns, so only
-- orders and ranges that cannot be had otherwise get one (docs/architecture.md, "Listings, and
-- the indexes behind them").
CREATE INDEX messages_created ON messages (created_at);
CREATE INDEX messages_session_created ON messages (session_id, created_at);
CREATE INDEX messages_session_sent ON messages (session_id, sent_at);

CREATE INDEX otp_verifications_owner ON otp_verifications (owner_id, created_at);
CREATE INDEX otp_verifications_phone_created ON otp_verifications (phone, created_at);
