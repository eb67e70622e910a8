//! Evening out the sessions over the live nodes. Claiming alone fills a node up to its share
//! (the sessions to run divided by the live nodes, rounded up), but never takes a session
//! another node runs, so a node that joins (or comes back) would stay idle beside a full one.
//! So a node that runs more than its share while other live nodes run fewer hands the
//! difference over, a few sessions per heartbeat: it closes them and gives their leases up, and
//! the nodes with room claim them with their next heartbeat. Not while sessions wait to be
//! claimed (a node went away): the nodes with room fill up with those first, and a failover is
//! not slowed down by sessions moving for balance.
//!
//! A session handed over that no node takes (say every other node lacks its engine) is not lost:
//! a session that no node has run for [`stranded_after`] is claimed by any node, share or not,
//! and one that came back that way is not handed over again for [`KEEP_RETURNED_MS`].

use std::collections::HashMap;

use wagate_core::SessionId;

/// At most this many sessions are handed over per heartbeat: each one reconnects elsewhere, and
/// a real WhatsApp account does not like a burst of logins.
pub(super) const HANDOVERS_PER_HEARTBEAT: usize = 10;

/// A session handed over that came back is kept this long before it may be handed over again.
const KEEP_RETURNED_MS: i64 = 10 * 60_000;

/// How long a session no node runs waits for a node with room before any node takes it: a
/// lease, then two heartbeats for the nodes with room to claim it.
pub(super) fn stranded_after(lease_ms: i64, heartbeat_ms: i64) -> i64 {
    lease_ms + 2 * heartbeat_ms
}

/// How many sessions a node running `mine` should hand over, when each node should run at most
/// `share` and the other live nodes run `others`: what it runs beyond its share, as far as the
/// others have room below theirs.
pub(super) fn to_hand_over(mine: usize, share: usize, others: &[usize]) -> usize {
    let excess = mine.saturating_sub(share);
    let room: usize = others.iter().map(|theirs| share.saturating_sub(*theirs)).sum();
    excess.min(room).min(HANDOVERS_PER_HEARTBEAT)
}

/// What a node remembers for evening out; bounded by the number of sessions.
#[derive(Default)]
pub(super) struct Balance {
    /// Sessions that should be online and no node runs, since when (as this node saw them).
    unowned_since: HashMap<SessionId, i64>,
    /// Sessions this node handed over, and when.
    handed_over: HashMap<SessionId, i64>,
}

impl Balance {
    /// Notes the sessions no node runs right now; the others are forgotten.
    pub(super) fn observe<'a>(&mut self, unowned: impl Iterator<Item = &'a SessionId>, now: i64) {
        let mut seen = HashMap::new();
        for id in unowned {
            let since = self.unowned_since.get(id).copied().unwrap_or(now);
            seen.insert(id.clone(), since);
        }
        self.unowned_since = seen;
    }

    /// Whether the session has waited for a node with room for longer than `after` ms.
    pub(super) fn stranded(&self, id: &SessionId, now: i64, after: i64) -> bool {
        self.unowned_since.get(id).is_some_and(|since| now - since > after)
    }

    /// Notes that this node took the session: it waits no more.
    pub(super) fn taken(&mut self, id: &SessionId) {
        self.unowned_since.remove(id);
    }

    /// Whether a session no node runs is still waiting for a node with room to claim it (not
    /// stranded yet): a node went away or sessions were started, and the nodes with room are
    /// about to take them. Handing sessions over meanwhile would only make more of them wait.
    pub(super) fn claims_pending(&self, now: i64, after: i64) -> bool {
        self.unowned_since.values().any(|since| now - since <= after)
    }

    pub(super) fn handed_over(&mut self, id: &SessionId, now: i64) {
        self.handed_over.insert(id.clone(), now);
    }

    /// Whether the session may be handed over: not when this node handed it over recently (it
    /// came back because nobody else took it).
    pub(super) fn may_hand_over(&mut self, id: &SessionId, now: i64) -> bool {
        self.handed_over.retain(|_, at| now - *at < KEEP_RETURNED_MS);
        !self.handed_over.contains_key(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_node_hands_over_what_the_others_have_room_for_a_few_at_a_time() {
        // 6 sessions, 3 nodes: a share of 2.
        assert_eq!(to_hand_over(6, 2, &[0, 0]), 4);
        assert_eq!(to_hand_over(4, 2, &[2, 0]), 2);
        assert_eq!(to_hand_over(2, 2, &[2, 2]), 0, "even");
        assert_eq!(to_hand_over(3, 3, &[2, 2]), 0, "7 over 3 nodes: 3, 2, 2 is even");
        assert_eq!(to_hand_over(4, 2, &[2, 2]), 0, "nobody has room");
        assert_eq!(to_hand_over(0, 2, &[6]), 0);
        assert_eq!(to_hand_over(60, 20, &[0, 0]), HANDOVERS_PER_HEARTBEAT, "a few per heartbeat");
    }

    #[test]
    fn a_session_nobody_takes_becomes_anyones_and_is_then_kept_and_waiting_ones_hold_hand_overs_back() {
        let id = SessionId::parse("s").unwrap();
        let other = SessionId::parse("t").unwrap();
        let mut balance = Balance::default();
        balance.observe([&id].into_iter(), 1_000);
        balance.observe([&id, &other].into_iter(), 5_000);
        assert!(!balance.stranded(&id, 5_000, 4_000));
        assert!(balance.stranded(&id, 5_001, 4_000), "unowned since 1,000");
        assert!(!balance.stranded(&other, 9_000, 4_000), "unowned since 5,000");
        assert!(balance.claims_pending(5_001, 4_000), "`other` still waits for a node with room");
        assert!(!balance.claims_pending(9_001, 4_000), "both stranded: nothing waits for a claim");
        balance.taken(&other);
        assert!(!balance.claims_pending(5_001, 4_000), "`other` was taken here");
        balance.observe(std::iter::empty(), 6_000);
        assert!(!balance.stranded(&id, 60_000, 4_000), "someone runs it now");

        assert!(balance.may_hand_over(&id, 0));
        balance.handed_over(&id, 0);
        assert!(!balance.may_hand_over(&id, KEEP_RETURNED_MS - 1), "it came back: kept");
        assert!(balance.may_hand_over(&id, KEEP_RETURNED_MS), "for a while");
    }
}
