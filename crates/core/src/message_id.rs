//! Ids of the messages wagate sends: WhatsApp's web format (`3EB0` and 18 upper-case hex
//! digits, 72 bits), laid out so that an id made later sorts later.
//!
//! The first 32 bits are the Unix second, the other 40 a count that starts at a random point in
//! each second and goes up by one per id. The id is the key of every message's row, and the
//! lookup of each receipt and status change: with ids at random places in the key space, every
//! insert and lookup reads a random page of an index that outgrows the database's page cache as
//! the history grows, and sending gets slower with every message kept. With ids in the order
//! they are made, the pages in use are the last few (BENCHMARKS.md, "Message ids in the order
//! they are made").
//!
//! Unique within a process: the count is never reused within its second, and a clock that goes
//! back stays in the last second used. Two processes (a cluster's nodes, or a restart within the
//! same second) make the same id only if their counts of the same second overlap: with `n` ids
//! each, a chance of about `2n / 2^39`. An id is not a secret: it tells when the message was
//! made, which its recipient sees anyway, and every read of a message checks its owner.

use std::sync::{Mutex, PoisonError};

/// A count starts below this, so a second has room for at least as many ids again.
const START_BELOW: u64 = 1 << 39;
const COUNT_END: u64 = 1 << 40;

/// The second ids are being made in, and the next count in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    second: u64,
    next: u64,
}

static LAST: Mutex<Option<Position>> = Mutex::new(None);

/// A new message id, later in order than every id this process made before.
pub fn new_message_id() -> String {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_secs());
    let (second, count) = {
        let mut last = LAST.lock().unwrap_or_else(PoisonError::into_inner);
        advance(&mut last, now, || rand::random::<u64>() % START_BELOW)
    };
    format!("3EB0{:08X}{count:010X}", second & 0xFFFF_FFFF)
}

/// The (second, count) of the next id, moving `last` on.
fn advance(last: &mut Option<Position>, now: u64, random_start: impl FnOnce() -> u64) -> (u64, u64) {
    let position = match *last {
        // The same second, or a clock that went back: go on counting in the last second used,
        // or in the one after it once that second's count is spent.
        Some(position) if now <= position.second => {
            if position.next < COUNT_END {
                position
            } else {
                Position { second: position.second + 1, next: random_start() }
            }
        }
        _ => Position { second: now, next: random_start() },
    };
    *last = Some(Position { next: position.next + 1, ..position });
    (position.second, position.next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_look_like_whatsapp_ids_and_sort_in_the_order_they_are_made() {
        let ids: Vec<String> = (0..1000).map(|_| new_message_id()).collect();
        for id in &ids {
            assert_eq!(id.len(), 22, "{id}");
            assert!(id.starts_with("3EB0"), "{id}");
            assert!(id.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()), "{id}");
            assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
        }
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "not in order: {ids:?}");
    }

    #[test]
    fn within_a_second_the_count_goes_up_from_a_random_start() {
        let mut last = None;
        assert_eq!(advance(&mut last, 100, || 7), (100, 7));
        assert_eq!(advance(&mut last, 100, || unreachable!()), (100, 8));
        assert_eq!(advance(&mut last, 101, || 3), (101, 3), "a new second starts a new count");
    }

    #[test]
    fn a_clock_that_goes_back_repeats_no_id() {
        let mut last = None;
        advance(&mut last, 100, || 7);
        assert_eq!(advance(&mut last, 90, || 0), (100, 8));
        assert_eq!(advance(&mut last, 100, || 0), (100, 9));
    }

    #[test]
    fn a_spent_second_moves_on_to_the_next() {
        let mut last = Some(Position { second: 100, next: COUNT_END - 1 });
        assert_eq!(advance(&mut last, 100, || 5), (100, COUNT_END - 1));
        assert_eq!(advance(&mut last, 100, || 5), (101, 5));
        assert_eq!(advance(&mut last, 101, || unreachable!()), (101, 6), "and stays in it when it comes");
    }
}
