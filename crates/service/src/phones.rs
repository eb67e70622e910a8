//! Reading the phone numbers callers write. A national number (`08123456789`) needs a country:
//! the server's `default_region` when the operator set one (it always wins), else the country
//! of the session that sends or asks, else the country that all of the caller's linked
//! sessions share. International numbers (`+62…`, `62…`) never need one.

use std::collections::BTreeSet;

use wagate_core::{Phone, PhoneError};
use wagate_store::{SessionRecord, Store, StoreError};

use crate::auth::Principal;

#[derive(Clone)]
pub struct PhoneReader {
    store: Store,
    /// The operator's region for numbers without a country code.
    default_region: Option<String>,
}

impl PhoneReader {
    pub fn new(store: Store, default_region: Option<String>) -> Self {
        PhoneReader { store, default_region }
    }

    /// A number read with the operator's `default_region` only (no session, no caller).
    pub fn read(&self, raw: &str) -> Result<Phone, PhoneError> {
        Phone::parse(raw, self.default_region.as_deref())
    }

    /// A number that `session` sends to or asks about: national numbers are read in the
    /// session's own country.
    pub fn read_for_session(&self, raw: &str, session: &SessionRecord) -> Result<Phone, PhoneError> {
        self.read_or_retry(raw, || session_region(session))
    }

    /// A number where no session is named: national numbers are read in the country that all
    /// of the caller's linked sessions share (none when they are in several countries).
    pub async fn read_for_caller(&self, raw: &str, principal: &Principal) -> Result<Phone, PhoneError> {
        let first = match self.read(raw) {
            Ok(phone) => return Ok(phone),
            Err(err) => err,
        };
        if self.default_region.is_some() {
            return Err(first);
        }
        match self.caller_region(principal).await {
            Ok(Some(region)) => Phone::parse(raw, Some(&region)),
            Ok(None) => Err(first),
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the caller's sessions for a phone number's country");
                Err(first)
            }
        }
    }

    /// The one country of the caller's linked sessions (that the caller may use), if they share one.
    pub async fn caller_region(&self, principal: &Principal) -> Result<Option<String>, StoreError> {
        let sessions = self.store.owner_sessions(&principal.user_id).await?;
        let regions: BTreeSet<String> =
            sessions.iter().filter(|s| principal.can_see(s)).filter_map(session_region).collect();
        Ok(if regions.len() == 1 { regions.into_iter().next() } else { None })
    }

    fn read_or_retry(
        &self,
        raw: &str,
        fallback: impl FnOnce() -> Option<String>,
    ) -> Result<Phone, PhoneError> {
        let first = match self.read(raw) {
            Ok(phone) => return Ok(phone),
            Err(err) => err,
        };
        match fallback().filter(|_| self.default_region.is_none()) {
            Some(region) => Phone::parse(raw, Some(&region)),
            None => Err(first),
        }
    }
}

/// The country of the number the session is linked to.
fn session_region(session: &SessionRecord) -> Option<String> {
    let account = session.account.as_ref()?;
    Phone::from_stored(&account.phone)?.region()
}

#[cfg(test)]
mod tests {
    use wagate_core::{EngineKind, Role, ScopeSet, SessionId};
    use wagate_store::{LinkedAccount, NewSession, NewUser};

    use super::*;

    /// A store with these sessions (id, owner's name, linked phone); owners are created as
    /// users named as given, and [`principal`] finds them by name.
    async fn store_with(sessions: &[(&str, &str, Option<&str>)]) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&Store::sqlite_url(dir.path())).await.unwrap();
        store.migrate().await.unwrap();
        let mut owners = std::collections::HashMap::new();
        for (id, owner, phone) in sessions {
            if !owners.contains_key(owner) {
                let user = NewUser { username: owner, password_hash: "-", role: Role::User };
                owners.insert(*owner, store.insert_user(user).await.unwrap().id);
            }
            let id = SessionId::parse(id).unwrap();
            let new = NewSession {
                id: &id,
                owner_id: &owners[owner],
                name: "s",
                engine: EngineKind::Sandbox,
                webhook_url: None,
            };
            store.insert_session(new).await.unwrap();
            if let Some(phone) = phone {
                let account = LinkedAccount { phone: (*phone).into(), lid: None, push_name: None };
                store.set_session_account(&id, Some(&account)).await.unwrap();
            }
        }
        (dir, store)
    }

    async fn principal(store: &Store, name: &str) -> Principal {
        let user_id = match store.user_by_username(name).await.unwrap() {
            Some(user) => user.id,
            None => "nobody".into(),
        };
        Principal {
            user_id,
            username: name.into(),
            role: Role::User,
            scopes: ScopeSet::all(),
            sessions: None,
            api_key_id: None,
            ip: None,
        }
    }

    #[tokio::test]
    async fn national_numbers_take_the_senders_country_unless_the_operator_set_one() {
        let (_dir, store) = store_with(&[("id1", "u1", Some("+6281234500001"))]).await;
        let session = store.session(&SessionId::parse("id1").unwrap()).await.unwrap().unwrap();
        let reader = PhoneReader::new(store.clone(), None);
        assert_eq!(reader.read_for_session("08123456789", &session).unwrap().e164(), "+628123456789");
        assert_eq!(reader.read_for_session("+14155550123", &session).unwrap().e164(), "+14155550123");
        assert!(reader.read("08123456789").is_err(), "no session, no default region");

        let overridden = PhoneReader::new(store, Some("MY".into()));
        assert_eq!(overridden.read_for_session("0123456789", &session).unwrap().e164(), "+60123456789");
    }

    #[tokio::test]
    async fn without_a_session_the_callers_shared_country_is_used() {
        let (_dir, store) = store_with(&[
            ("a1", "alice", Some("+6281234500001")),
            ("a2", "alice", Some("+6281234500002")),
            ("a3", "alice", None),
            ("b1", "bob", Some("+6281234500003")),
            ("b2", "bob", Some("+60123456780")),
            ("c1", "carol", Some("+60123456781")),
        ])
        .await;
        let reader = PhoneReader::new(store.clone(), None);
        let phone = reader.read_for_caller("08123456789", &principal(&store, "alice").await).await.unwrap();
        assert_eq!(phone.e164(), "+628123456789");
        assert!(
            reader.read_for_caller("08123456789", &principal(&store, "bob").await).await.is_err(),
            "sessions in two countries: no guess"
        );
        assert!(reader.read_for_caller("08123456789", &principal(&store, "nobody").await).await.is_err());
        assert_eq!(
            reader.read_for_caller("0123456789", &principal(&store, "carol").await).await.unwrap().e164(),
            "+60123456789",
            "another tenant's sessions do not count"
        );
    }
}
