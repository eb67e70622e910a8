//! Rate limits per key (client IP, username, phone number, API key), in memory.
//!
//! Each key holds one instant, its *theoretical arrival time* (GCRA, the generic cell rate
//! algorithm): `limit` hits may come at once, then one more every `window / limit`. A check
//! and a hit cost one hash-table lookup, whatever the number of keys.
//!
//! A key whose arrival time has passed has its whole allowance back and tells nothing, so it
//! is held only until then: a phone sent one code, with the default 10 per 600 s, is held for
//! 60 s, not for the window. To forget keys without scanning the table at once, every hit
//! also looks at the next [`SWEEP_PER_HIT`] buckets of the table, going round it, and drops
//! the keys there whose arrival time has passed. A lap of a table of `n` buckets takes
//! `n / SWEEP_PER_HIT` hits, so at most that many passed keys wait to be dropped; at the end
//! of a lap a table far too big for the keys left (after a burst) is made smaller.
//!
//! A key is held in 12 bytes (13 with the table's control byte), with no allocation of its
//! own: a 64-bit fingerprint of it (a hash seeded anew in every process, so nobody can choose
//! keys that collide) and its arrival time in 32 bits. Two keys sharing a fingerprint would
//! share one allowance; among a million keys the chance that any two do is about one in 30
//! million. Arrival times count units of `window / 2^24` from an epoch; before the count could
//! outgrow 32 bits (every 128 windows), the epoch moves to the present in one pass over the
//! keys, which also drops those whose time has passed.
//!
//! Unlike `governor`'s keyed limiter, checking here does not count (the login lock-out asks
//! whether a username is locked before it knows whether the attempt fails), and its keyed
//! store is kept small by scanning all keys (`retain_recent`), the cost this structure avoids.

use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

/// Buckets of the table each hit looks at for keys to forget: more than the one key a hit may
/// add, so forgetting keeps up with any traffic.
const SWEEP_PER_HIT: usize = 16;

/// A table with more than this many buckets per key held is made smaller at the end of a lap.
const SHRINK_BELOW_ONE_KEY_IN: usize = 8;

/// A window is `2^UNITS_PER_WINDOW_BITS` units of time (or fewer, of one nanosecond each).
const UNITS_PER_WINDOW_BITS: u32 = 24;

/// The epoch moves once it is this many units behind: arrival times, at most a window ahead,
/// then still fit in 32 bits.
const EPOCH_MOVES_AFTER: Units = 1 << 31;

/// What is left of a key's allowance after a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    /// Hits that may follow at once.
    pub remaining: u32,
    /// When the whole allowance is back, if no more hits come.
    pub full_again_in: Duration,
}

/// Time in the limiter's units since it was made.
type Units = u64;

pub struct RateLimiter {
    /// Nanoseconds in a unit.
    unit: u64,
    window: Units,
    /// The time one hit occupies: `window / limit`.
    emission: Units,
    started: Instant,
    fingerprints: RandomState,
    keys: Mutex<Keys>,
}

/// A key's fingerprint and its arrival time, in units after [`Keys::epoch`]. Packed to 12
/// bytes: the table holds one per key.
#[repr(C, packed(4))]
struct Held {
    key: u64,
    arrival: u32,
}

/// The fingerprint is already a keyed hash: the table places keys by it as it is.
fn place(held: &Held) -> u64 {
    held.key
}

#[derive(Default)]
struct Keys {
    /// Keys whose arrival time may not have passed yet.
    held: HashTable<Held>,
    /// What the held arrival times count from.
    epoch: Units,
    /// The bucket the sweep looks at next.
    sweep_at: usize,
}

impl Keys {
    /// Moves the epoch to `now` when arrival times after it could soon outgrow 32 bits,
    /// dropping the keys whose time has passed.
    fn keep_epoch_near(&mut self, now: Units) {
        let moved = now - self.epoch;
        if moved < EPOCH_MOVES_AFTER {
            return;
        }
        self.held.retain(|held| match u64::from(held.arrival).checked_sub(moved) {
            Some(ahead) if ahead > 0 => {
                held.arrival = ahead as u32;
                true
            }
            _ => false,
        });
        self.epoch = now;
    }

    fn arrival(&self, key: u64) -> Option<Units> {
        let held = self.held.find(key, |held| held.key == key)?;
        Some(self.epoch + u64::from(held.arrival))
    }

    /// Sets `key`'s arrival time: after `now`, at most a window ahead.
    fn set(&mut self, key: u64, arrival: Units) {
        let after_epoch = arrival - self.epoch;
        debug_assert!(after_epoch <= u64::from(u32::MAX), "the epoch is at most 2^31 units behind");
        let arrival = after_epoch as u32;
        match self.held.entry(key, |held| held.key == key, place) {
            Entry::Occupied(mut entry) => entry.get_mut().arrival = arrival,
            Entry::Vacant(entry) => {
                entry.insert(Held { key, arrival });
            }
        }
    }

    fn forget(&mut self, key: u64) {
        if let Ok(entry) = self.held.find_entry(key, |held| held.key == key) {
            entry.remove();
        }
    }

    /// Looks at the next [`SWEEP_PER_HIT`] buckets and drops the keys whose arrival time has
    /// passed; at the end of a lap, gives back what a table far too big for its keys holds.
    fn forget_passed(&mut self, now: Units) {
        let passed = now - self.epoch;
        let buckets = self.held.num_buckets();
        let start = self.sweep_at.min(buckets);
        let end = (start + SWEEP_PER_HIT).min(buckets);
        for bucket in start..end {
            if let Ok(entry) = self.held.get_bucket_entry(bucket)
                && u64::from(entry.get().arrival) <= passed
            {
                entry.remove();
            }
        }
        self.sweep_at = end;
        if end >= buckets {
            self.sweep_at = 0;
            if self.held.len() * SHRINK_BELOW_ONE_KEY_IN < buckets {
                self.held.shrink_to(self.held.len() * 2, place);
            }
        }
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl RateLimiter {
    /// `limit` hits per `window` (both at least 1).
    pub fn new(limit: u32, window: Duration) -> Self {
        let window = nanos(window).clamp(1_000_000, u64::MAX / 4);
        let unit = (window >> UNITS_PER_WINDOW_BITS).max(1);
        let window = window / unit;
        RateLimiter {
            unit,
            window,
            emission: (window / u64::from(limit.max(1))).max(1),
            started: Instant::now(),
            fingerprints: RandomState::new(),
            keys: Mutex::default(),
        }
    }

    /// The keys, and the time now, read once they are locked: the epoch, moved under the
    /// lock, is never after it.
    fn keys(&self) -> (std::sync::MutexGuard<'_, Keys>, Units) {
        let mut keys = self.keys.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = self.now();
        keys.keep_epoch_near(now);
        (keys, now)
    }

    fn now(&self) -> Units {
        nanos(self.started.elapsed()) / self.unit
    }

    fn duration(&self, units: Units) -> Duration {
        Duration::from_nanos(units.saturating_mul(self.unit))
    }

    fn fingerprint(&self, key: &str) -> u64 {
        self.fingerprints.hash_one(key)
    }

    /// How long after `now` a key whose arrival time is `arrival` may be hit again.
    fn wait(&self, arrival: Units, now: Units) -> Option<Duration> {
        // One more hit fits while the arrival time stays within the window.
        let allowed_until = now + self.window - self.emission;
        (arrival > allowed_until).then(|| self.duration(arrival - allowed_until))
    }

    /// `Err(wait)` when `key` used up its allowance; counts nothing.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let key = self.fingerprint(key);
        let (keys, now) = self.keys();
        let Some(arrival) = keys.arrival(key) else { return Ok(()) };
        drop(keys);
        self.wait(arrival, now).map_or(Ok(()), Err)
    }

    /// Counts a hit of `key`. A key hit beyond its allowance waits at most one window.
    pub fn record(&self, key: &str) {
        let key = self.fingerprint(key);
        let (mut keys, now) = self.keys();
        let arrival = keys.arrival(key);
        let next = (arrival.unwrap_or(now).max(now) + self.emission).min(now + self.window);
        keys.set(key, next);
        keys.forget_passed(now);
    }

    /// Checks and counts a hit of `key` at once: what is left of its allowance, or
    /// `Err(wait)` when it is used up (then nothing is counted).
    pub fn take(&self, key: &str) -> Result<Allowance, Duration> {
        let key = self.fingerprint(key);
        let (mut keys, now) = self.keys();
        let arrival = keys.arrival(key).unwrap_or(now).max(now);
        let answer = match self.wait(arrival, now) {
            Some(wait) => Err(wait),
            None => {
                let next = arrival + self.emission;
                keys.set(key, next);
                let unused = (now + self.window).saturating_sub(next);
                Ok(Allowance {
                    remaining: (unused / self.emission) as u32,
                    full_again_in: self.duration(next - now),
                })
            }
        };
        keys.forget_passed(now);
        answer
    }

    pub fn clear(&self, key: &str) {
        let key = self.fingerprint(key);
        self.keys().0.forget(key);
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.keys().0.held.len()
    }

    /// How many buckets the table has: what it takes in memory, 13 bytes each.
    #[cfg(test)]
    fn buckets(&self) -> usize {
        self.keys().0.held.num_buckets()
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
        // 5 per 200 ms: a hit occupies 40 ms.
        let limiter = RateLimiter::new(5, Duration::from_millis(200));
        for n in 0..1000 {
            limiter.record(&format!("phone-{n}"));
        }
        assert_eq!(limiter.len(), 1000);
        std::thread::sleep(Duration::from_millis(50));
        // Each hit looks at 16 buckets: one lap of the table takes buckets / 16 hits.
        let lap = limiter.buckets() / SWEEP_PER_HIT;
        for n in 0..lap {
            limiter.record(&format!("fresh-{n}"));
        }
        assert_eq!(limiter.len(), lap, "only the keys whose hits have not passed are held");
        assert!(limiter.check("phone-7").is_ok(), "a forgotten key has its full allowance");
    }

    #[test]
    fn the_table_gets_smaller_again_after_a_burst() {
        // 5 per second: a hit occupies 200 ms.
        let limiter = RateLimiter::new(5, Duration::from_secs(1));
        for n in 0..20_000 {
            limiter.record(&format!("burst-{n}"));
        }
        let at_the_peak = limiter.buckets();
        assert!(at_the_peak >= 20_000, "{at_the_peak} buckets");
        std::thread::sleep(Duration::from_millis(210));
        // One key, hit until the sweep has been round the whole table since the burst passed:
        // it may be halfway round when the burst ends.
        for _ in 0..2 * at_the_peak / SWEEP_PER_HIT {
            limiter.record("steady");
        }
        assert_eq!(limiter.len(), 1);
        assert!(limiter.buckets() <= 16, "{} buckets left for one key", limiter.buckets());
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
            limiter.record(&format!("other-{n}")); // sweeps past "k", whose time has not passed
        }
        assert_eq!(limiter.len(), 6, "\"k\" is still held");
        // One hit's share (100 ms) has passed: one more fits, then none.
        assert!(limiter.check("k").is_ok());
        limiter.record("k");
        assert!(limiter.check("k").is_err(), "the arrival time of \"k\" was kept, not started over");
    }

    #[test]
    fn a_key_takes_twelve_bytes() {
        assert_eq!(std::mem::size_of::<Held>(), 12);
    }

    #[test]
    fn arrival_times_stay_exact_when_the_epoch_moves() {
        let mut keys = Keys::default();
        keys.set(1, 100);
        keys.set(2, EPOCH_MOVES_AFTER + 1_000);
        keys.keep_epoch_near(EPOCH_MOVES_AFTER - 1);
        assert_eq!(keys.epoch, 0, "not yet");
        let now = EPOCH_MOVES_AFTER + 10;
        keys.keep_epoch_near(now);
        assert_eq!(keys.epoch, now);
        assert_eq!(keys.arrival(1), None, "a key whose time had passed is dropped");
        assert_eq!(keys.arrival(2), Some(EPOCH_MOVES_AFTER + 1_000));
        // Moved again, past where 32 bits counted from the first epoch would reach.
        let later = 2 * EPOCH_MOVES_AFTER + 20;
        keys.keep_epoch_near(later);
        assert_eq!(keys.arrival(2), None);
        let far = later + (1 << 25);
        assert!(far > u64::from(u32::MAX));
        keys.set(3, far);
        keys.set(4, later + 5);
        assert_eq!(keys.arrival(3), Some(far));
        keys.forget_passed(later + 5);
        assert_eq!(keys.held.len(), 1, "the sweep compares times after the epoch");
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
        assert!(limiter.buckets() <= 2048, "{} buckets for {} keys", limiter.buckets(), limiter.len());
    }
}
