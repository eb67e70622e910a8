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
//! Unlike `governor`'s keyed limiter, checking here does not count: the login lock-out asks
//! whether a username is locked before it knows whether the attempt fails.

use std::collections::HashMap;
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

pub struct RateLimiter {
    window: Duration,
    /// The time one hit occupies: `window / limit`.
    emission: Duration,
    keys: Mutex<Generations>,
}

struct Generations {
    current: HashMap<String, Instant>,
    previous: HashMap<String, Instant>,
    rotated_at: Instant,
}

impl Generations {
    fn arrival(&self, key: &str) -> Option<Instant> {
        self.current.get(key).or_else(|| self.previous.get(key)).copied()
    }

    /// Starts a new generation once a window has passed; returns the dropped one, so the
    /// caller frees it outside the lock.
    fn rotate(&mut self, now: Instant, window: Duration) -> Option<HashMap<String, Instant>> {
        if now.duration_since(self.rotated_at) < window {
            return None;
        }
        self.rotated_at = now;
        let current = std::mem::take(&mut self.current);
        Some(std::mem::replace(&mut self.previous, current))
    }
}

impl RateLimiter {
    /// `limit` hits per `window` (both at least 1).
    pub fn new(limit: u32, window: Duration) -> Self {
        let limit = limit.max(1);
        let window = window.max(Duration::from_millis(1));
        RateLimiter {
            window,
            emission: window / limit,
            keys: Mutex::new(Generations {
                current: HashMap::new(),
                previous: HashMap::new(),
                rotated_at: Instant::now(),
            }),
        }
    }

    fn keys(&self) -> std::sync::MutexGuard<'_, Generations> {
        self.keys.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `Err(wait)` when `key` used up its allowance; counts nothing.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let Some(arrival) = self.keys().arrival(key) else { return Ok(()) };
        // One more hit fits while the arrival time stays within the window.
        let allowed_until = now + self.window - self.emission;
        match arrival.checked_duration_since(allowed_until) {
            Some(wait) if !wait.is_zero() => Err(wait),
            _ => Ok(()),
        }
    }

    /// Counts a hit of `key`. A key hit beyond its allowance waits at most one window.
    pub fn record(&self, key: &str) {
        let now = Instant::now();
        let dropped = {
            let mut keys = self.keys();
            let dropped = keys.rotate(now, self.window);
            let arrival = keys.previous.remove(key).or_else(|| keys.current.get(key).copied());
            let next = (arrival.unwrap_or(now).max(now) + self.emission).min(now + self.window);
            match keys.current.get_mut(key) {
                Some(slot) => *slot = next,
                None => {
                    keys.current.insert(key.to_owned(), next);
                }
            }
            dropped
        };
        drop(dropped);
    }

    /// Checks and counts a hit of `key` at once: what is left of its allowance, or
    /// `Err(wait)` when it is used up (then nothing is counted).
    pub fn take(&self, key: &str) -> Result<Allowance, Duration> {
        let now = Instant::now();
        let (dropped, answer) = {
            let mut keys = self.keys();
            let dropped = keys.rotate(now, self.window);
            let arrival = keys.arrival(key).unwrap_or(now).max(now);
            let allowed_until = now + self.window - self.emission;
            let answer = match arrival.checked_duration_since(allowed_until) {
                Some(wait) if !wait.is_zero() => Err(wait),
                _ => {
                    let next = arrival + self.emission;
                    keys.previous.remove(key);
                    keys.current.insert(key.to_owned(), next);
                    let unused = (now + self.window).saturating_duration_since(next);
                    let remaining = unused.as_nanos() / self.emission.as_nanos().max(1);
                    Ok(Allowance { remaining: remaining as u32, full_again_in: next - now })
                }
            };
            (dropped, answer)
        };
        drop(dropped);
        answer
    }

    pub fn clear(&self, key: &str) {
        let mut keys = self.keys();
        keys.current.remove(key);
        keys.previous.remove(key);
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
