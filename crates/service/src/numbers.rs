//! "Is this number on WhatsApp?", with answers cached for a while.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use wagate_core::Phone;
use wagate_engine::NumberCheck;
use wagate_store::SessionRecord;

use crate::sessions::{SessionError, SessionManager};

pub struct NumberCache {
    ttl: Duration,
    entries: Mutex<HashMap<(wagate_core::SessionId, String), (Instant, NumberCheck)>>,
}

pub struct Checked {
    pub check: NumberCheck,
    pub cached: bool,
}

impl NumberCache {
    pub fn new(ttl: Duration) -> Self {
        NumberCache { ttl, entries: Mutex::new(HashMap::new()) }
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
        let now = Instant::now();
        let mut answers: Vec<Option<Checked>> = {
            let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            phones
                .iter()
                .map(|p| {
                    entries
                        .get(&(session.clone(), p.e164().to_owned()))
                        .filter(|(at, _)| now.duration_since(*at) < self.ttl)
                        .map(|(_, check)| Checked { check: check.clone(), cached: true })
                })
                .collect()
        };
        let missing: Vec<Phone> =
            phones.iter().zip(&answers).filter(|(_, a)| a.is_none()).map(|(p, _)| p.clone()).collect();
        if !missing.is_empty() {
            let fresh = sessions.check_numbers(record, &missing).await?;
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            if entries.len() > 100_000 {
                entries.retain(|_, (at, _)| now.duration_since(*at) < self.ttl);
            }
            for check in fresh {
                entries.insert((session.clone(), check.phone.e164().to_owned()), (now, check.clone()));
                if let Some(slot) =
                    phones.iter().zip(answers.iter_mut()).find(|(p, a)| a.is_none() && **p == check.phone)
                {
                    *slot.1 = Some(Checked { check, cached: false });
                }
            }
        }
        Ok(answers.into_iter().flatten().collect())
    }
}
