//! Each tenant's OTP settings and message templates, cached (every send reads them).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use wagate_core::Phone;
use wagate_store::{OtpTemplateRecord, Store, StoreError};

use super::templates::language;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtpSettings {
    /// Put the code in the send response (seed 004's behaviour). INSECURE: anyone who can read
    /// your API responses or logs sees every code. Off unless you turn it on.
    pub return_code_in_response: bool,
    /// Pool used when a send names neither `session` nor `pool` (else: any connected session
    /// of yours).
    pub default_pool: Option<String>,
    /// Brand ("company name") shown in messages when a send gives none.
    pub brand: Option<String>,
    /// Locale when a send gives none (default `en`).
    pub default_locale: Option<String>,
    /// ISO 3166 region codes allowed (empty: all).
    pub allowed_countries: Vec<String>,
    /// ISO 3166 region codes refused.
    pub denied_countries: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid settings: {0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OtpSettings {
    fn validate(&self) -> Result<(), SettingsError> {
        for code in self.allowed_countries.iter().chain(&self.denied_countries) {
            if code.len() != 2 || !code.chars().all(|c| c.is_ascii_uppercase()) {
                return Err(SettingsError::Invalid(format!(
                    "`{code}` is not an ISO 3166 region code such as ID"
                )));
            }
        }
        if let Some(locale) = &self.default_locale
            && !super::templates::valid_locale(locale)
        {
            return Err(SettingsError::Invalid(format!("`{locale}` is not a locale")));
        }
        if self.brand.as_ref().is_some_and(|b| b.chars().count() > 64 || b.trim().is_empty()) {
            return Err(SettingsError::Invalid("brand must be 1 to 64 characters".into()));
        }
        if self.default_pool.as_ref().is_some_and(|p| p.is_empty() || p.len() > 64) {
            return Err(SettingsError::Invalid("default_pool must be 1 to 64 characters".into()));
        }
        Ok(())
    }

    /// The phone's region when these settings refuse it (`unknown` when it has none).
    pub(super) fn refused_region(&self, phone: &Phone) -> Option<String> {
        if self.allowed_countries.is_empty() && self.denied_countries.is_empty() {
            return None;
        }
        let region = phone.region().unwrap_or_else(|| "unknown".into());
        let allowed = self.allowed_countries.is_empty() || self.allowed_countries.contains(&region);
        (!allowed || self.denied_countries.contains(&region)).then_some(region)
    }
}

/// Every tenant's settings and templates as last read. Exact within the process (changes go
/// through it); another node's changes are dropped through [`SettingsCache::forget_all`].
pub(super) struct SettingsCache {
    store: Store,
    /// Raised by every drop, so that a read which overlapped one is not kept.
    generation: AtomicU64,
    settings: RwLock<HashMap<String, Arc<OtpSettings>>>,
    templates: RwLock<HashMap<String, Arc<Vec<OtpTemplateRecord>>>>,
}

impl SettingsCache {
    pub(super) fn new(store: Store) -> Self {
        SettingsCache {
            store,
            generation: AtomicU64::new(0),
            settings: RwLock::default(),
            templates: RwLock::default(),
        }
    }

    pub(super) async fn get(&self, owner_id: &str) -> Result<Arc<OtpSettings>, SettingsError> {
        if let Some(cached) = self.settings.read().unwrap_or_else(|p| p.into_inner()).get(owner_id) {
            return Ok(cached.clone());
        }
        let generation = self.generation.load(Ordering::Acquire);
        let settings = match self.store.otp_settings(owner_id).await? {
            Some(json) => serde_json::from_str(&json).map_err(|e| SettingsError::Invalid(e.to_string()))?,
            None => OtpSettings::default(),
        };
        Ok(self.remember(&self.settings, owner_id, settings, generation))
    }

    /// Applies the fields present in `patch` (`null` clears one).
    pub(super) async fn update(
        &self,
        owner_id: &str,
        patch: serde_json::Value,
    ) -> Result<Arc<OtpSettings>, SettingsError> {
        let serde_json::Value::Object(patch) = patch else {
            return Err(SettingsError::Invalid("expected a JSON object".into()));
        };
        let current = self.get(owner_id).await?;
        let mut merged = serde_json::to_value(current.as_ref()).expect("settings serialize");
        let map = merged.as_object_mut().expect("settings are an object");
        for (key, value) in patch {
            map.insert(key, value);
        }
        let settings: OtpSettings =
            serde_json::from_value(merged).map_err(|e| SettingsError::Invalid(e.to_string()))?;
        settings.validate()?;
        let generation = self.generation.load(Ordering::Acquire);
        self.store.put_otp_settings(owner_id, &serde_json::to_string(&settings).expect("serializes")).await?;
        Ok(self.remember(&self.settings, owner_id, settings, generation))
    }

    /// The tenant's own body of template `name` for `locale` (or its language), if any.
    pub(super) async fn template(
        &self,
        owner_id: &str,
        name: &str,
        locale: &str,
    ) -> Result<Option<String>, StoreError> {
        let cached = self.templates.read().unwrap_or_else(|p| p.into_inner()).get(owner_id).cloned();
        let templates = match cached {
            Some(templates) => templates,
            None => {
                let generation = self.generation.load(Ordering::Acquire);
                let templates = self.store.otp_templates(owner_id).await?;
                self.remember(&self.templates, owner_id, templates, generation)
            }
        };
        let find =
            |l: &str| templates.iter().find(|t| t.name == name && t.locale == l).map(|t| t.body.clone());
        Ok(find(locale).or_else(|| find(language(locale))))
    }

    pub(super) fn forget_templates(&self, owner_id: &str) {
        self.templates.write().unwrap_or_else(|p| p.into_inner()).remove(owner_id);
    }

    /// Drops every tenant's settings and templates (another node changed some).
    pub(super) fn forget_all(&self) {
        let mut settings = self.settings.write().unwrap_or_else(|p| p.into_inner());
        let mut templates = self.templates.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        settings.clear();
        templates.clear();
    }

    /// Keeps `value`, read when the generation was `generation`, unless a drop happened since
    /// (it may be older than what that drop was for); returns the shared copy either way.
    fn remember<T>(
        &self,
        cache: &RwLock<HashMap<String, Arc<T>>>,
        owner_id: &str,
        value: T,
        generation: u64,
    ) -> Arc<T> {
        let value = Arc::new(value);
        let mut cache = cache.write().unwrap_or_else(|p| p.into_inner());
        // Checked under the lock: `forget_all` raises the generation while holding it.
        if self.generation.load(Ordering::Acquire) == generation {
            cache.insert(owner_id.to_owned(), value.clone());
        }
        value
    }
}
