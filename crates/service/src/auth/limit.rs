//! A rate limit as the gateway applies it: in this process on SQLite (one node), in the
//! database on PostgreSQL and MariaDB/MySQL, where several nodes may count the same keys.
//! Both follow GCRA with the same allowance: `limit` hits at once, then one every
//! `window / limit`.

use std::time::Duration;

use wagate_store::{Dialect, Store, StoreError};

use super::rate_limit::{Allowance, RateLimiter};
use crate::time::now_ms;

pub enum Limit {
    Process(RateLimiter),
    Cluster(ClusterLimit),
}

/// A limit counted in the database. Keys are `name:key`, so limits share one table.
pub struct ClusterLimit {
    store: Store,
    name: &'static str,
    window_ms: i64,
    emission_ms: i64,
}

impl Limit {
    /// `limit` hits per `window` of keys named `name` (unique among the limits).
    pub fn new(store: &Store, name: &'static str, limit: u32, window: Duration) -> Self {
        if store.dialect() == Dialect::Sqlite {
            return Limit::Process(RateLimiter::new(limit, window));
        }
        let window_ms = (window.as_millis() as i64).max(1);
        Limit::Cluster(ClusterLimit {
            store: store.clone(),
            name,
            window_ms,
            emission_ms: (window_ms / i64::from(limit.max(1))).max(1),
        })
    }

    /// `Ok(Err(wait))` when `key` used up its allowance; counts nothing.
    pub async fn check(&self, key: &str) -> Result<Result<(), Duration>, StoreError> {
        match self {
            Limit::Process(limiter) => Ok(limiter.check(key)),
            Limit::Cluster(limit) => {
                let Some(arrival) = limit.store.rate_arrival(&limit.key(key)).await? else {
                    return Ok(Ok(()));
                };
                let allowed_until = now_ms() + limit.window_ms - limit.emission_ms;
                Ok(match arrival - allowed_until {
                    wait if wait > 0 => Err(Duration::from_millis(wait as u64)),
                    _ => Ok(()),
                })
            }
        }
    }

    /// Counts a hit of `key` when its allowance has room: then what is left, else how long to
    /// wait. In the database the check and the count are two statements: nodes hitting one key
    /// at the same instant may both pass, and both count.
    pub async fn take(&self, key: &str) -> Result<Result<Allowance, Duration>, StoreError> {
        let limit = match self {
            Limit::Process(limiter) => return Ok(limiter.take(key)),
            Limit::Cluster(limit) => limit,
        };
        let key = limit.key(key);
        let now = now_ms();
        let arrival = limit.store.rate_arrival(&key).await?.unwrap_or(now).max(now);
        let allowed_until = now + limit.window_ms - limit.emission_ms;
        if arrival > allowed_until {
            return Ok(Err(Duration::from_millis((arrival - allowed_until) as u64)));
        }
        limit.store.rate_record(&key, now, limit.emission_ms, limit.window_ms).await?;
        let next = (arrival + limit.emission_ms).min(now + limit.window_ms);
        Ok(Ok(Allowance {
            remaining: ((now + limit.window_ms - next) / limit.emission_ms) as u32,
            full_again_in: Duration::from_millis((next - now) as u64),
        }))
    }

    /// Counts a hit of `key`.
    pub async fn record(&self, key: &str) -> Result<(), StoreError> {
        match self {
            Limit::Process(limiter) => {
                limiter.record(key);
                Ok(())
            }
            Limit::Cluster(limit) => {
                limit.store.rate_record(&limit.key(key), now_ms(), limit.emission_ms, limit.window_ms).await
            }
        }
    }

    /// Gives `key` its whole allowance back.
    pub async fn clear(&self, key: &str) -> Result<(), StoreError> {
        match self {
            Limit::Process(limiter) => {
                limiter.clear(key);
                Ok(())
            }
            Limit::Cluster(limit) => limit.store.rate_clear(&limit.key(key)).await,
        }
    }
}

impl ClusterLimit {
    fn key(&self, key: &str) -> String {
        // Long keys (user names) are cut to the column's width; a cut only merges keys that
        // share their first 200 characters.
        let key: String = key.chars().take(200).collect();
        format!("{}:{key}", self.name)
    }
}
