//! "Is this number on WhatsApp?", with answers cached for a while.
//!
//! The cache is bounded (at most [`CAPACITY`] answers; the least used go first) and each
//! answer lives `ttl`: a lookup or an insert costs the same however many numbers were
//! checked before.

use std::time::Duration;

use moka::sync::Cache;
use wagate_core::{Phone, SessionId};
use wagate_engine::NumberCheck;
use wagate_store::SessionRecord;

use crate::sessions::{SessionError, SessionManager};

/// At most this many answers are kept.
const CAPACITY: u64 = 100_000;

pub struct NumberCache {
    answers: Cache<(SessionId, String), NumberCheck>,
}

pub struct Checked {
    pub check: NumberCheck,
    pub cached: bool,
}

impl NumberCache {
    pub fn new(ttl: Duration) -> Self {
        Self::with_capacity(ttl, CAPACITY)
    }

    fn with_capacity(ttl: Duration, capacity: u64) -> Self {
        NumberCache { answers: Cache::builder().max_capacity(capacity).time_to_live(ttl).build() }
    }

    /// Answers from the cache where fresh; asks the network, through the session, for the rest
    /// in one request.
    pub async fn check(
        &self,
        sessions: &SessionManager,
        record: &SessionRecord,
        phones: &[Phone],
    ) -> Result<Vec<Checked>, SessionError> {
        let session = &record.id;
        let mut answers: Vec<Option<Checked>> = phones
            .iter()
            .map(|p| {
                let check = self.answers.get(&(session.clone(), p.e164().to_owned()))?;
                Some(Checked { check, cached: true })
            })
            .collect();
        let missing: Vec<Phone> =
            phones.iter().zip(&answers).filter(|(_, a)| a.is_none()).map(|(p, _)| p.clone()).collect();
        if !missing.is_empty() {
            let fresh = sessions.check_numbers(record, &missing).await?;
            for check in fresh {
                self.answers.insert((session.clone(), check.phone.e164().to_owned()), check.clone());
                if let Some(slot) =
                    phones.iter().zip(answers.iter_mut()).find(|(p, a)| a.is_none() && **p == check.phone)
                {
                    *slot.1 = Some(Checked { check, cached: false });
                }
            }
        }
        Ok(answers.into_iter().flatten().collect())
    }

    /// How many answers are kept (after pending evictions ran).
    #[cfg(test)]
    fn len(&self) -> u64 {
        self.answers.run_pending_tasks();
        self.answers.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(n: u64) -> NumberCheck {
        let phone = Phone::parse(&format!("+62812{n:08}"), None).unwrap();
        NumberCheck { phone, on_whatsapp: true, jid: None, lid: None, business: false }
    }

    #[test]
    fn the_cache_stays_within_its_capacity_and_forgets_old_answers() {
        let cache = NumberCache::with_capacity(Duration::from_secs(60), 1_000);
        let session = SessionId::parse("s1").unwrap();
        for n in 0..5_000 {
            let check = answer(n);
            cache.answers.insert((session.clone(), check.phone.e164().to_owned()), check);
        }
        assert!(cache.len() <= 1_000, "bounded: {}", cache.len());

        let short = NumberCache::with_capacity(Duration::from_millis(50), 1_000);
        let check = answer(1);
        let key = (session, check.phone.e164().to_owned());
        short.answers.insert(key.clone(), check);
        assert!(short.answers.get(&key).is_some());
        std::thread::sleep(Duration::from_millis(80));
        assert!(short.answers.get(&key).is_none(), "an answer lives `ttl` only");
    }
}
