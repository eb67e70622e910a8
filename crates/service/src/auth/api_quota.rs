//! Requests per minute per credential: each API key has its own allowance, and each user
//! signed in with a login token has one. Off unless the operator sets a limit. Counted in the
//! database on PostgreSQL and MariaDB/MySQL, so that every node of a cluster counts the same.

use std::time::Duration;

use serde::Deserialize;
use wagate_store::{Store, StoreError};

use super::Principal;
use super::limit::Limit;
use super::rate_limit::Allowance;

/// Requests allowed per minute; 0 means no limit.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiLimits {
    /// Per API key.
    pub per_key_per_minute: u32,
    /// Per user, for requests made with a login token.
    pub per_user_per_minute: u32,
}

/// Where a request stands against its credential's allowance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests per minute.
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the whole allowance is back.
    pub reset_secs: u64,
}

/// A request beyond its credential's allowance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this credential made more than {limit} requests in a minute; try again in {retry_after_secs} s")]
pub struct QuotaExceeded {
    pub limit: u32,
    pub retry_after_secs: u64,
}

pub struct ApiQuota {
    per_key: Option<(u32, Limit)>,
    per_user: Option<(u32, Limit)>,
}

const MINUTE: Duration = Duration::from_secs(60);

impl ApiQuota {
    pub fn new(store: &Store, limits: &ApiLimits) -> Self {
        let limiter = |name, limit: u32| (limit > 0).then(|| (limit, Limit::new(store, name, limit, MINUTE)));
        ApiQuota {
            per_key: limiter("api.key", limits.per_key_per_minute),
            per_user: limiter("api.user", limits.per_user_per_minute),
        }
    }

    /// Counts one request of `principal`. `Ok(None)`: its credential has no limit.
    pub async fn admit(
        &self,
        principal: &Principal,
    ) -> Result<Result<Option<Quota>, QuotaExceeded>, StoreError> {
        let (limited, key) = match &principal.api_key_id {
            Some(key_id) => (&self.per_key, key_id.as_str()),
            None => (&self.per_user, principal.user_id.as_str()),
        };
        let Some((limit, limiter)) = limited else { return Ok(Ok(None)) };
        Ok(match limiter.take(key).await? {
            Ok(Allowance { remaining, full_again_in }) => {
                Ok(Some(Quota { limit: *limit, remaining, reset_secs: ceil_secs(full_again_in) }))
            }
            Err(wait) => Err(QuotaExceeded { limit: *limit, retry_after_secs: ceil_secs(wait) }),
        })
    }
}

fn ceil_secs(duration: Duration) -> u64 {
    duration.as_millis().div_ceil(1000) as u64
}

#[cfg(test)]
mod tests {
    use wagate_core::{Role, ScopeSet};
    use wagate_testkit::DatabaseKind;

    use crate::test_store::store_on;

    use super::*;

    fn caller(user: &str, key: Option<&str>) -> Principal {
        Principal {
            user_id: user.into(),
            username: user.into(),
            role: Role::User,
            scopes: ScopeSet::all(),
            sessions: None,
            api_key_id: key.map(str::to_owned),
            ip: None,
        }
    }

    /// The same allowances counted in the process (SQLite) and in the database (the others).
    #[tokio::test]
    async fn keys_and_users_have_their_own_allowances() {
        for kind in [DatabaseKind::Sqlite, DatabaseKind::Postgres, DatabaseKind::Mysql] {
            let (store, _database, _dir) = store_on(kind).await;
            let quota = ApiQuota::new(&store, &ApiLimits { per_key_per_minute: 2, per_user_per_minute: 3 });
            let admit = async |principal: &Principal| quota.admit(principal).await.unwrap();
            let key = caller("u1", Some("k1"));
            assert_eq!(admit(&key).await.unwrap().map(|q| (q.limit, q.remaining)), Some((2, 1)), "{kind:?}");
            assert_eq!(admit(&key).await.unwrap().map(|q| q.remaining), Some(0));
            let refused = admit(&key).await.unwrap_err();
            assert_eq!(refused.limit, 2);
            assert!((29..=30).contains(&refused.retry_after_secs), "{kind:?}: {refused:?}");
            assert!(admit(&caller("u1", Some("k2"))).await.is_ok(), "another key of the same user");
            let user = caller("u1", None);
            for left in [2, 1, 0] {
                assert_eq!(admit(&user).await.unwrap().map(|q| q.remaining), Some(left), "{kind:?}");
            }
            assert!(admit(&user).await.is_err());
            assert!(admit(&caller("u2", None)).await.is_ok(), "another user");
        }
    }

    #[tokio::test]
    async fn no_limit_by_default() {
        let (store, _database, _dir) = store_on(DatabaseKind::Sqlite).await;
        let quota = ApiQuota::new(&store, &ApiLimits::default());
        for _ in 0..1000 {
            assert_eq!(quota.admit(&caller("u1", Some("k1"))).await.unwrap(), Ok(None));
        }
    }
}
