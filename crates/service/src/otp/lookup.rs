//! Finding verifications for a caller: by id, the latest of a phone, the log; each with the
//! delivery status of the message carrying its code. Others' verifications answer like ones
//! that do not exist.

use wagate_core::Phone;
use wagate_store::{OtpFilter, OtpRecord};

use super::request::{Listing, Tracked};
use super::{OtpError, OtpService};
use crate::auth::Principal;

/// Longest verification id looked up; longer ones cannot exist.
const MAX_ID_LEN: usize = 64;

/// Whether the caller may see this verification: its owner (or an admin), through a key that
/// is not limited to other sessions.
pub(super) fn may_see(principal: &Principal, record: &OtpRecord) -> bool {
    principal.may_access(&record.owner_id, record.session_id.as_deref())
}

impl OtpService {
    /// The caller's verification `id`, with its delivery.
    pub async fn show(&self, principal: &Principal, id: &str) -> Result<Tracked, OtpError> {
        let record = self.visible(principal, id).await?;
        self.tracked(record).await
    }

    /// The tenant's latest verification of `phone`, with its delivery (seed routes).
    pub async fn latest(&self, principal: &Principal, phone: &Phone) -> Result<Tracked, OtpError> {
        let record = self.latest_record(principal, phone).await?;
        self.tracked(record).await
    }

    /// The log as `filter` selects it, newest first (the dashboard's view; it narrows the
    /// filter to the tenant itself).
    pub async fn list(&self, filter: &OtpFilter) -> Result<Vec<OtpRecord>, OtpError> {
        Ok(self.store.otps(filter).await?)
    }

    /// A page of the log, newest first: `filter` narrowed to what the caller may see.
    pub async fn page(&self, principal: &Principal, mut filter: OtpFilter) -> Result<Listing, OtpError> {
        filter.owner_id = principal.owner_filter().map(str::to_owned);
        let records = self.store.otps(&filter).await?;
        let next = (records.len() as u32 == filter.limit)
            .then(|| records.last().map(|r| (r.created_at, r.id.clone())))
            .flatten();
        let mut verifications = Vec::with_capacity(records.len());
        for record in records {
            let visible = principal.sessions.as_ref().is_none_or(|allowed| {
                record.session_id.as_ref().is_some_and(|s| allowed.iter().any(|a| a.as_str() == s))
            });
            if visible {
                verifications.push(self.tracked(record).await?);
            }
        }
        Ok(Listing { verifications, next })
    }

    /// A verification the caller may see (not found otherwise, like one that does not exist).
    pub async fn visible(&self, principal: &Principal, id: &str) -> Result<OtpRecord, OtpError> {
        if id.len() > MAX_ID_LEN {
            return Err(OtpError::NotFound);
        }
        let record = self.store.otp(id).await?.ok_or(OtpError::NotFound)?;
        if may_see(principal, &record) { Ok(record) } else { Err(OtpError::NotFound) }
    }

    /// The tenant's latest verification of `phone`, if the caller may see it.
    pub(super) async fn latest_record(
        &self,
        principal: &Principal,
        phone: &Phone,
    ) -> Result<OtpRecord, OtpError> {
        let filter = OtpFilter {
            owner_id: Some(principal.user_id.clone()),
            phone: Some(phone.e164().to_owned()),
            limit: 1,
            ..OtpFilter::default()
        };
        let record = self.store.otps(&filter).await?.into_iter().next().ok_or(OtpError::NotFound)?;
        self.visible(principal, &record.id).await
    }

    /// The record with the status of its message (none in inbound mode).
    pub(super) async fn tracked(&self, record: OtpRecord) -> Result<Tracked, OtpError> {
        let delivery_status = match &record.message_id {
            Some(id) => self.store.message(id).await?.map(|m| m.status),
            None => None,
        };
        Ok(Tracked { record, delivery_status })
    }
}
