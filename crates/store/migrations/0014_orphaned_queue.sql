-- Messages left waiting by a session deleted before a deletion settled its queue could never
-- be sent (and listings of what waits now go through the sessions): they fail, as they would
-- when their session is deleted today.
UPDATE messages SET status = 'failed', reason = 'session deleted', lease_until = NULL
WHERE status IN ('queued', 'sending') AND session_id NOT IN (SELECT id FROM sessions);
