//! Rate limits per key (client IP, username, phone number, API key), in memory.
//!
//! Each key holds one instant, its *theoretical arrival time* (GCRA, the generic cell rate
//! algorithm): `limit` hits may come at once, then one more every `window / limit`. A check
//! and a hit cost one hash-map lookup, whatever the number of keys.
//!
//! Memory stays bounded without scanning the map on a request: keys live in two generations
//! that rotate every `window`. A hit moves its key into the current generation; a key that
//! had no hit for a whole window is back to its full allowance (its arrival time is in the
//! past), so the generation it sits in is dropped whole at the next rotation. The map holds
//! at most the keys seen in the last two windows.
//!
//! A key is held as a 64-bit fingerprint (a hash seeded anew in every process, so nobody can
//! choose keys that collide) with its arrival time: 16 bytes and no allocation per key, where
//! the key's text would take about a hundred. Two keys sharing a fingerprint would share one
//! allowance; among a million keys the chance that any two do is about one in 30 million.
//!
//! Unlike `governor`'s keyed limiter, checking here does not count: the login lock-out asks
//! whether a username is locked before it knows whether the attempt fails.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
    started: Instant,
    fingerprints: RandomState,
    keys: Mutex<Generations>,
}

struct Generations {
    current: HashMap<u64, Nanos>,
    previous: HashMap<u64, Nanos>,
    rotated_at: Nanos,
}

impl Generations {
    fn arrival(&self, key: u64) -> Option<Nanos> {
        self.current.get(&key).or_else(|| self.previous.get(&key)).copied()
    }

    /// Starts a new generation once a window has passed; returns the dropped one, so the
    /// caller frees it outside the lock.
    fn rotate(&mut self, now: Nanos, window: Nanos) -> Option<HashMap<u64, Nanos>> {
        if now - self.rotated_at < window {
            return None;
        }
        self.rotated_at = now;
        let current = std::mem::take(&mut self.current);
        Some(std::mem::replace(&mut self.previous, current))
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
            started: Instant::now(),
            fingerprints: RandomState::new(),
            keys: Mutex::new(Generations {
                current: HashMap::new(),
                previous: HashMap::new(),
                rotated_at: 0,
            }),
        }
    }

    fn keys(&self) -> std::sync::MutexGuard<'_, Generations> {
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
        let dropped = {
            let mut keys = self.keys();
            let dropped = keys.rotate(now, self.window);
            let arrival = keys.previous.remove(&key).or_else(|| keys.current.get(&key).copied());
            let next = (arrival.unwrap_or(now).max(now) + self.emission).min(now + self.window);
            keys.current.insert(key, next);
            dropped
        };
        drop(dropped);
    }

    /// Checks and counts a hit of `key` at once: what is left of its allowance, or
    /// `Err(wait)` when it is used up (then nothing is counted).
    pub fn take(&self, key: &str) -> Result<Allowance, Duration> {
        let key = self.fingerprint(key);
        let now = self.now();
        let (dropped, answer) = {
            let mut keys = self.keys();
            let dropped = keys.rotate(now, self.window);
            let arrival = keys.arrival(key).unwrap_or(now).max(now);
            let answer = match self.wait(arrival, now) {
                Some(wait) => Err(wait),
                None => {
                    let next = arrival + self.emission;
                    keys.previous.remove(&key);
                    keys.current.insert(key, next);
                    let unused = (now + self.window).saturating_sub(next);
                    Ok(Allowance {
                        remaining: (unused / self.emission) as u32,
                        full_again_in: Duration::from_nanos(next - now),
                    })
                }
            };
            (dropped, answer)
        };
        drop(dropped);
        answer
    }

    pub fn clear(&self, key: &str) {
        let key = self.fingerprint(key);
        let mut keys = self.keys();
        keys.current.remove(&key);
        keys.previous.remove(&key);
    }

    /// How many keys are held (both generations).
    pub fn len(&self) -> usize {
        let keys = self.keys();
        keys.current.len() + keys.previous.len()
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
    fn keys_without_hits_for_two_windows_are_forgotten() {
        let window = Duration::from_millis(200);
        let limiter = RateLimiter::new(5, window);
        for n in 0..1000 {
            limiter.record(&format!("phone-{n}"));
        }
        assert_eq!(limiter.len(), 1000);
        std::thread::sleep(window + Duration::from_millis(10));
        limiter.record("fresh");
        assert_eq!(limiter.len(), 1001, "one rotation keeps the last window's keys");
        std::thread::sleep(window + Duration::from_millis(10));
        limiter.record("fresher");
        assert_eq!(limiter.len(), 2, "the second rotation drops keys idle for a window");
        assert!(limiter.check("phone-7").is_ok(), "a forgotten key has its full allowance");
    }

    #[test]
    fn a_key_in_the_previous_generation_keeps_its_count() {
        let window = Duration::from_millis(200);
        let limiter = RateLimiter::new(2, window);
        limiter.record("k");
        limiter.record("k");
        std::thread::sleep(Duration::from_millis(205));
        limiter.record("other"); // rotates: "k" is now in the previous generation
        // "k" was last hit 205 ms ago: both hits' shares have passed, one hit fits again.
        assert!(limiter.check("k").is_ok());
        limiter.record("k");
        limiter.record("k");
        assert!(limiter.check("k").is_err(), "its state moved to the current generation");
    }
}
