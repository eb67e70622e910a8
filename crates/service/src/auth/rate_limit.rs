//! Rate limits per key (client IP, username, phone number, API key), in memory.
//!
//! Each key holds one instant, its *theoretical arrival time* (GCRA, the generic cell rate
//! algorithm): `limit` hits may come at once, then one more every `window / limit`. A check
//! and a hit cost one hash-map lookup, whatever the number of keys.
//!
//! A key whose arrival time has passed has its whole allowance back and tells nothing, so it
//! is held only until then: a phone sent one code, with the default 10 per 600 s, is held for
//! 60 s, not for the window. To forget keys without scanning the map, each hit also files its
//! key under the slot (a 64th of the window) in which its new arrival time falls; every hit
//! then looks at up to [`FORGET_PER_HIT`] keys of slots whose time has passed and drops those
//! not hit again since. Memory follows the keys still limited, with one 8-byte slot entry per
//! hit of the last window at most.
//!
//! A key is held as a 64-bit fingerprint (a hash seeded anew in every process, so nobody can
//! choose keys that collide) with its arrival time: 16 bytes and no allocation per key, where
//! the key's text would take about a hundred. Two keys sharing a fingerprint would share one
//! allowance; among a million keys the chance that any two do is about one in 30 million.
//!
//! Unlike `governor`'s keyed limiter, checking here does not count (the login lock-out asks
//! whether a username is locked before it knows whether the attempt fails), and its keyed
//! store is kept small by scanning all keys (`retain_recent`), the cost this structure avoids.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window is cut into this many slots for forgetting keys.
const SLOTS_PER_WINDOW: u64 = 64;

/// Slot entries looked at per hit: more than the one entry a hit adds, so forgetting keeps up
/// with any traffic and catches up quickly after a burst.
const FORGET_PER_HIT: usize = 64;

/// What is left of a key's allowance after a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    /// Hits that may follow at once.
    pub remaining: u32,
    /// When the whole allowance is back, if no more hits come.
    pub full_again_in: Duration,
}

/// Nanoseconds since the limiter was made: an arrival time in 8 bytes.
type Nanos = u64;

pub struct RateLimiter {
    window: Nanos,
    /// The time one hit occupies: `window / limit`.
    emission: Nanos,
    /// The width of a slot of [`Keys::expiring`].
    slot: Nanos,
    started: Instant,
    fingerprints: RandomState,
    keys: Mutex<Keys>,
}

#[derive(Default)]
struct Keys {
    /// Each key's arrival time, for keys whose arrival time may not have passed yet.
    arrivals: HashMap<u64, Nanos>,
    /// Keys by the slot in which the arrival time a hit gave them passes. A key hit again
    /// since is filed again under a later slot.
    expiring: BTreeMap<u64, Vec<u64>>,
}

impl Keys {
    fn arrival(&self, key: u64) -> Option<Nanos> {
        self.arrivals.get(&key).copied()
    }

    fn set(&mut self, key: u64, arrival: Nanos, slot: Nanos) {
        self.arrivals.insert(key, arrival);
        self.expiring.entry(arrival / slot).or_default().push(key);
    }

    /// Drops up to [`FORGET_PER_HIT`] keys filed under slots that have passed, unless they
    /// were hit again since. Returns the emptied slots' lists, freed outside the lock.
    fn forget_passed(&mut self, now: Nanos, slot: Nanos) -> Vec<Vec<u64>> {
        let mut emptied = Vec::new();
        let mut budget = FORGET_PER_HIT;
        while budget > 0
            && let Some(mut first) = self.expiring.first_entry()
            && (*first.key() + 1).saturating_mul(slot) <= now
        {
            let filed = first.get_mut();
            while budget > 0
                && let Some(key) = filed.pop()
            {
                budget -= 1;
                if self.arrivals.get(&key).is_some_and(|&arrival| arrival <= now) {
                    self.arrivals.remove(&key);
                }
            }
            if filed.is_empty() {
                emptied.push(first.remove());
            }
        }
        emptied
    }
}

fn nanos(duration: Duration) -> Nanos {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl RateLimiter {
    /// `limit` hits per `window` (both at least 1).
    pub fn new(limit: u32, window: Duration) -> Self {
        let window = nanos(window).clamp(1_000_000, u64::MAX / 4);
        RateLimiter {
            window,
            emission: (window / u64::from(limit.max(1))).max(1),
            slot: window.div_ceil(SLOTS_PER_WINDOW),
            started: Instant::now(),
            fingerprints: RandomState::new(),
            keys: Mutex::default(),
        }
    }

    fn keys(&self) -> std::sync::MutexGuard<'_, Keys> {
        self.keys.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn now(&self) -> Nanos {
        nanos(self.started.elapsed())
    }

    fn fingerprint(&self, key: &str) -> u64 {
        self.fingerprints.hash_one(key)
    }

    /// How long after `now` a key whose arrival time is `arrival` may be hit again.
    fn wait(&self, arrival: Nanos, now: Nanos) -> Option<Duration> {
        // One more hit fits while the arrival time stays within the window.
        let allowed_until = now + self.window - self.emission;
        (arrival > allowed_until).then(|| Duration::from_nanos(arrival - allowed_until))
    }

    /// `Err(wait)` when `key` used up its allowance; counts nothing.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let key = self.fingerprint(key);
        let now = self.now();
        let Some(arrival) = self.keys().arrival(key) else { return Ok(()) };
        self.wait(arrival, now).map_or(Ok(()), Err)
    }

    /// Counts a hit of `key`. A key hit beyond its allowance waits at most one window.
    pub fn record(&self, key: &str) {
        let key = self.fingerprint(key);
        let now = self.now();
        let emptied = {
            let mut keys = self.keys();
            let arrival = keys.arrival(key);
            let next = (arrival.unwrap_or(now).max(now) + self.emission).min(now + self.window);
            keys.set(key, next, self.slot);
            keys.forget_passed(now, self.slot)
        };
        drop(emptied);
    }

    /// Checks and counts a hit of `key` at once: what is left of its allowance, or
    /// `Err(wait)` when it is used up (then nothing is counted).
    pub fn take(&self, key: &str) -> Result<Allowance, Duration> {
        let key = self.fingerprint(key);
        let now = self.now();
        let (emptied, answer) = {
            let mut keys = self.keys();
            let arrival = keys.arrival(key).unwrap_or(now).max(now);
            let answer = match self.wait(arrival, now) {
                Some(wait) => Err(wait),
                None => {
                    let next = arrival + self.emission;
                    keys.set(key, next, self.slot);
                    let unused = (now + self.window).saturating_sub(next);
                    Ok(Allowance {
                        remaining: (unused / self.emission) as u32,
                        full_again_in: Duration::from_nanos(next - now),
                    })
                }
            };
            (keys.forget_passed(now, self.slot), answer)
        };
        drop(emptied);
        answer
    }

    pub fn clear(&self, key: &str) {
        let key = self.fingerprint(key);
        self.keys().arrivals.remove(&key);
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.keys().arrivals.len()
    }

    /// How many slot entries are held (at most one per hit of the last window).
    #[cfg(test)]
    fn filed(&self) -> usize {
        self.keys().expiring.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_at_the_limit_and_reports_the_wait() {
        let limiter = RateLimiter::new(2, Duration::from_secs(60));
        limiter.record("k");
        assert!(limiter.check("k").is_ok());
        limiter.record("k");
        let wait = limiter.check("k").unwrap_err();
        // The next hit is allowed once one hit's share of the window (30 s) has passed.
        assert!(wait > Duration::from_secs(29) && wait <= Duration::from_secs(30), "{wait:?}");
        assert!(limiter.check("other").is_ok());
        limiter.clear("k");
        assert!(limiter.check("k").is_ok());
    }

    #[test]
    fn take_counts_and_tells_what_is_left() {
        let limiter = RateLimiter::new(3, Duration::from_secs(60));
        let first = limiter.take("k").unwrap();
        assert_eq!(first.remaining, 2);
        assert!(first.full_again_in <= Duration::from_secs(20), "{first:?}");
        assert_eq!(limiter.take("k").unwrap().remaining, 1);
        let last = limiter.take("k").unwrap();
        assert_eq!(last.remaining, 0);
        assert!(last.full_again_in > Duration::from_secs(59), "{last:?}");
        let wait = limiter.take("k").unwrap_err();
        assert!(wait > Duration::from_secs(19) && wait <= Duration::from_secs(20), "{wait:?}");
        assert!(limiter.take("k").is_err(), "a refused hit is not counted, and still refused");
        assert_eq!(limiter.take("other").unwrap().remaining, 2);
    }

    #[test]
    fn a_burst_then_one_per_share_of_the_window() {
        let limiter = RateLimiter::new(3, Duration::from_secs(3));
        for _ in 0..3 {
            assert!(limiter.check("k").is_ok());
            limiter.record("k");
        }
        assert!(limiter.check("k").is_err(), "the burst is used up");
        std::thread::sleep(Duration::from_millis(1010));
        assert!(limiter.check("k").is_ok(), "one hit's share (1 s) has passed");
        limiter.record("k");
        assert!(limiter.check("k").is_err());
    }

    #[test]
    fn hits_beyond_the_allowance_lock_for_one_window_at_most() {
        let limiter = RateLimiter::new(2, Duration::from_millis(100));
        for _ in 0..50 {
            limiter.record("k");
        }
        let wait = limiter.check("k").unwrap_err();
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        std::thread::sleep(Duration::from_millis(110));
        assert!(limiter.check("k").is_ok());
    }

    #[test]
    fn keys_are_forgotten_once_their_hits_have_passed() {
        // 5 per 200 ms: a hit occupies 40 ms, a slot is about 3 ms.
        let limiter = RateLimiter::new(5, Duration::from_millis(200));
        for n in 0..1000 {
            limiter.record(&format!("phone-{n}"));
        }
        assert_eq!(limiter.len(), 1000);
        std::thread::sleep(Duration::from_millis(50));
        // Each hit looks at up to 64 passed entries: 20 hits are enough for 1,000 keys.
        for n in 0..20 {
            limiter.record(&format!("fresh-{n}"));
        }
        assert_eq!(limiter.len(), 20, "only the keys whose hits have not passed are held");
        assert_eq!(limiter.filed(), 20);
        assert!(limiter.check("phone-7").is_ok(), "a forgotten key has its full allowance");
    }

    #[test]
    fn a_key_hit_again_is_not_forgotten_with_its_earlier_hits() {
        // 3 per 300 ms: hits of "k" at once give it arrival times 100, 200 and 300 ms ahead.
        let limiter = RateLimiter::new(3, Duration::from_millis(300));
        for _ in 0..3 {
            limiter.record("k");
        }
        assert!(limiter.check("k").is_err());
        std::thread::sleep(Duration::from_millis(150));
        for n in 0..5 {
            limiter.record(&format!("other-{n}")); // looks at the entries of "k" that passed
        }
        assert_eq!(limiter.len(), 6, "\"k\" is still held");
        // One hit's share (100 ms) has passed: one more fits, then none.
        assert!(limiter.check("k").is_ok());
        limiter.record("k");
        assert!(limiter.check("k").is_err(), "the arrival time of \"k\" was kept, not started over");
    }

    #[test]
    fn memory_follows_the_keys_still_limited_not_the_keys_ever_seen() {
        let limiter = RateLimiter::new(10, Duration::from_millis(100));
        for round in 0..20 {
            for n in 0..500 {
                limiter.record(&format!("r{round}-{n}"));
            }
            std::thread::sleep(Duration::from_millis(15));
        }
        // 10,000 keys seen; each held for a hit's share (10 ms) and the time to drain it.
        assert!(limiter.len() <= 1500, "{} keys held", limiter.len());
        assert!(limiter.filed() <= 1500, "{} slot entries held", limiter.filed());
    }
}
