//! A tenant's OTP administration: settings, message templates, per-phone failure counters,
//! and codes generated without being sent.

use std::sync::Arc;

use wagate_core::otp::OtpCode;

use super::request::{PhoneStanding, TemplateCatalog, TemplateEntry};
use super::settings::OtpSettings;
use super::{OtpError, OtpService, templates};

impl OtpService {
    pub async fn settings(&self, owner_id: &str) -> Result<Arc<OtpSettings>, OtpError> {
        Ok(self.settings.get(owner_id).await?)
    }

    /// Applies the fields present in `patch` (`null` clears one).
    pub async fn update_settings(
        &self,
        owner_id: &str,
        patch: serde_json::Value,
    ) -> Result<Arc<OtpSettings>, OtpError> {
        Ok(self.settings.update(owner_id, patch).await?)
    }

    /// The tenant's templates, and the built-in ones.
    pub async fn templates(&self, owner_id: &str) -> Result<TemplateCatalog, OtpError> {
        let own = self
            .store
            .otp_templates(owner_id)
            .await?
            .into_iter()
            .map(|t| TemplateEntry {
                name: t.name,
                locale: t.locale,
                body: t.body,
                updated_at: Some(t.updated_at),
            })
            .collect();
        let built_in = [templates::PUSH, templates::INBOUND]
            .iter()
            .flat_map(|name| {
                templates::BUILT_IN_LOCALES.iter().map(move |locale| TemplateEntry {
                    name: (*name).to_owned(),
                    locale: (*locale).to_owned(),
                    body: templates::built_in(name, locale).unwrap_or_default().to_owned(),
                    updated_at: None,
                })
            })
            .collect();
        Ok(TemplateCatalog { own, built_in })
    }

    /// Creates or replaces a template once its name, locale and body pass.
    pub async fn put_template(
        &self,
        owner_id: &str,
        name: &str,
        locale: &str,
        body: &str,
    ) -> Result<(), OtpError> {
        if !templates::valid_name(name) {
            return Err(OtpError::InvalidTemplateName);
        }
        if !templates::valid_locale(locale) {
            return Err(OtpError::InvalidLocale(locale.to_owned()));
        }
        templates::validate(body)?;
        self.store.put_otp_template(owner_id, name, locale, body).await?;
        self.settings.forget_templates(owner_id);
        Ok(())
    }

    pub async fn delete_template(&self, owner_id: &str, name: &str, locale: &str) -> Result<(), OtpError> {
        let deleted = self.store.delete_otp_template(owner_id, name, locale).await?;
        self.settings.forget_templates(owner_id);
        if deleted { Ok(()) } else { Err(OtpError::TemplateNotFound) }
    }

    /// Consecutive wrong codes for the phone and, when locked, until when.
    pub async fn phone_failures(&self, owner_id: &str, phone: &str) -> Result<PhoneStanding, OtpError> {
        Ok(self.assess_failures(self.store.phone_failures(owner_id, phone).await?))
    }

    pub async fn reset_phone_failures(&self, owner_id: &str, phone: &str) -> Result<bool, OtpError> {
        Ok(self.store.clear_phone_failures(owner_id, phone).await?)
    }

    /// A random code of `length` digits (default 6) from the OS generator; nothing is stored
    /// or sent.
    pub fn generate(&self, length: Option<i64>) -> Result<OtpCode, OtpError> {
        let length = length.unwrap_or(wagate_core::otp::DEFAULT_LENGTH as i64);
        let range = wagate_core::otp::MIN_LENGTH as i64..=wagate_core::otp::MAX_LENGTH as i64;
        if !range.contains(&length) {
            return Err(OtpError::InvalidLength);
        }
        Ok(OtpCode::generate(length as usize))
    }
}
