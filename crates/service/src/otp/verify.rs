//! Checking a code, by verification id or by phone, and the per-phone lock after too many
//! wrong codes in a row.

use std::time::Duration;

use wagate_core::OtpStatus;
use wagate_core::otp::OtpCode;
use wagate_store::{OtpRecord, PhoneFailures};

use super::limits::Caller;
use super::lookup::may_see;
use super::request::{PhoneStanding, Verdict, VerifyTarget};
use super::{OtpError, OtpService};
use crate::auth::Principal;
use crate::time::now_ms;

impl OtpService {
    /// Checks a code. By id, a verification that is no longer pending is an error; by phone,
    /// a phone without a pending verification answers like a wrong code.
    pub async fn verify(
        &self,
        principal: &Principal,
        caller: &Caller,
        target: VerifyTarget,
        raw_code: &str,
    ) -> Result<Verdict, OtpError> {
        self.limits.check_verify(caller).await?;
        self.limits.record_verify(caller).await?;
        let code = OtpCode::parse(raw_code).map_err(OtpError::InvalidCode)?;
        match target {
            VerifyTarget::Id(id) => {
                let found =
                    if id.len() > 64 { None } else { self.store.otp_with_phone_failures(&id).await? };
                let (record, failures) = match found {
                    Some((record, failures)) if may_see(principal, &record) => (record, failures),
                    _ => return Err(OtpError::NotFound),
                };
                let failures = self.refuse_locked(self.assess_failures(failures))?;
                let status = record.effective_status(now_ms());
                if status != OtpStatus::Pending {
                    if status == OtpStatus::Expired {
                        self.expire(&record).await;
                    }
                    return Err(OtpError::NotPending(status));
                }
                self.check(&record, &code, failures).await
            }
            VerifyTarget::Phone(phone) => {
                let owner = principal.user_id.as_str();
                let failures = self.check_phone_lock(owner, phone.e164()).await?;
                let pending = self.store.pending_otp(owner, phone.e164()).await?;
                let mut verdict = match pending {
                    Some(record) if record.effective_status(now_ms()) == OtpStatus::Pending => {
                        self.check(&record, &code, failures).await?
                    }
                    _ => {
                        let failures = self.store.add_phone_failure(owner, phone.e164(), now_ms()).await?;
                        let attempts_left = (i64::from(self.config.max_attempts) - failures).max(0);
                        let status =
                            if attempts_left == 0 { OtpStatus::MaxAttempts } else { OtpStatus::Pending };
                        Verdict { valid: false, status, attempts_left, record: None }
                    }
                };
                verdict.record = None;
                Ok(verdict)
            }
        }
    }

    /// Checks `code` against a pending verification. `failures`: the phone's consecutive
    /// failures as read before (a success clears them).
    async fn check(&self, record: &OtpRecord, code: &OtpCode, failures: i64) -> Result<Verdict, OtpError> {
        let now = now_ms();
        let right = code.len() as i64 == record.code_length
            && code.matches(&self.pepper, &record.id, &record.code_mac);
        if right {
            if let Some(now) = self.approvals.submit(record.id.clone()).await? {
                if failures > 0 {
                    self.store.clear_phone_failures(&record.owner_id, &record.phone).await?;
                }
                let approved = OtpRecord {
                    status: OtpStatus::Approved,
                    approved_at: Some(now),
                    updated_at: now,
                    ..record.clone()
                };
                tracing::info!(otp = %record.id, "verification approved");
                self.emit(&approved, "otp.approved", serde_json::json!({ "method": "code" })).await;
                return Ok(Verdict {
                    valid: true,
                    status: OtpStatus::Approved,
                    attempts_left: approved.attempts_left(),
                    record: Some(approved),
                });
            }
            // Lost a race (another request approved it, or its time ran out just now).
            let current = self.store.otp(&record.id).await?.ok_or(OtpError::NotFound)?;
            return Ok(Verdict {
                valid: false,
                status: current.effective_status(now),
                attempts_left: current.attempts_left(),
                record: Some(current),
            });
        }
        self.store.add_phone_failure(&record.owner_id, &record.phone, now).await?;
        match self.store.record_otp_failure(&record.id, now).await? {
            Some(updated) => {
                if updated.status == OtpStatus::MaxAttempts {
                    tracing::info!(otp = %record.id, "verification locked after too many wrong codes");
                    self.emit(&updated, "otp.max_attempts", serde_json::json!({})).await;
                }
                Ok(Verdict {
                    valid: false,
                    status: updated.status,
                    attempts_left: updated.attempts_left(),
                    record: Some(updated),
                })
            }
            None => {
                let current = self.store.otp(&record.id).await?.ok_or(OtpError::NotFound)?;
                Ok(Verdict {
                    valid: false,
                    status: current.effective_status(now),
                    attempts_left: current.attempts_left(),
                    record: Some(current),
                })
            }
        }
    }

    /// Refuses a locked phone; otherwise returns its consecutive failures.
    pub(super) async fn check_phone_lock(&self, owner_id: &str, phone: &str) -> Result<i64, OtpError> {
        let failures = self.store.phone_failures(owner_id, phone).await?;
        self.refuse_locked(self.assess_failures(failures))
    }

    fn refuse_locked(&self, standing: PhoneStanding) -> Result<i64, OtpError> {
        match standing.locked_until {
            Some(until) => {
                Err(OtpError::PhoneLocked(Duration::from_millis((until - now_ms()).max(1000) as u64)))
            }
            None => Ok(standing.failures),
        }
    }

    /// A phone's consecutive failures and, when locked, until when.
    pub(super) fn assess_failures(&self, failures: Option<PhoneFailures>) -> PhoneStanding {
        match failures {
            None => PhoneStanding { failures: 0, locked_until: None },
            Some(f) => {
                let locked_until = f.last_failure_at + self.config.phone_lock_secs as i64 * 1000;
                let locked =
                    f.failures >= i64::from(self.config.phone_failure_cap) && locked_until > now_ms();
                PhoneStanding { failures: f.failures, locked_until: locked.then_some(locked_until) }
            }
        }
    }
}
