-- When a message was first handed to its session: the first `sending` step of its history,
-- kept on the row so the hot path writes one statement per claim.
ALTER TABLE messages ADD COLUMN claimed_at BIGINT NULL;
