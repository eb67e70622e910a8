//! A sliding-window counter per key, in memory.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct RateLimiter {
    limit: u32,
    window: Duration,
    hits: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        RateLimiter { limit, window, hits: Mutex::new(HashMap::new()) }
    }

    fn hits(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Instant>>> {
        self.hits.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `Err(wait)` when `key` used up its allowance; counts nothing.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut hits = self.hits();
        let Some(queue) = hits.get_mut(key) else { return Ok(()) };
        while queue.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
            queue.pop_front();
        }
        if queue.len() as u32 >= self.limit {
            let oldest = *queue.front().expect("non-empty at the limit");
            return Err(self.window.saturating_sub(now.duration_since(oldest)));
        }
        Ok(())
    }

    pub fn record(&self, key: &str) {
        let now = Instant::now();
        let mut hits = self.hits();
        if hits.len() > 100_000 {
            // Bound memory under a flood of distinct keys: drop keys whose window passed.
            hits.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < self.window));
        }
        hits.entry(key.to_owned()).or_default().push_back(now);
    }

    pub fn clear(&self, key: &str) {
        self.hits().remove(key);
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
        assert!(wait > Duration::from_secs(58) && wait <= Duration::from_secs(60));
        assert!(limiter.check("other").is_ok());
        limiter.clear("k");
        assert!(limiter.check("k").is_ok());
    }

    #[test]
    fn window_slides() {
        let limiter = RateLimiter::new(1, Duration::from_millis(30));
        limiter.record("k");
        assert!(limiter.check("k").is_err());
        std::thread::sleep(Duration::from_millis(40));
        assert!(limiter.check("k").is_ok());
    }
}
