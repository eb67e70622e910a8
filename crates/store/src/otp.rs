//! One-time-password verifications, per-phone failure counters, templates and settings.
//!
//! Every change of a verification's state is one conditional `UPDATE` (`… WHERE status =
//! 'pending'`), so concurrent requests cannot both approve a code or both take the last
//! attempt.

use sqlx::Row;
use sqlx::any::AnyRow;
use wagate_core::{MessageStatus, OtpMode, OtpStatus};

use crate::batch::{InList, placeholders, row_runs};
use crate::filter::Where;
use crate::{MessageRecord, NewMessage, Result, Store, StoreError, now_ms, parse_column};

#[derive(Debug, Clone)]
pub struct OtpRecord {
    pub id: String,
    pub owner_id: String,
    pub phone: String,
    pub session_id: Option<String>,
    pub pool: Option<String>,
    pub message_id: Option<String>,
    pub requested_mode: OtpMode,
    pub mode: OtpMode,
    pub code_mac: String,
    pub code_length: i64,
    pub locale: String,
    pub brand: Option<String>,
    pub template: Option<String>,
    pub status: OtpStatus,
    pub reason: Option<String>,
    pub attempts: i64,
    pub max_attempts: i64,
    pub sends: i64,
    pub ttl_ms: i64,
    pub expires_at: i64,
    pub last_sent_at: i64,
    pub api_key_id: Option<String>,
    pub client_ip: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub approved_at: Option<i64>,
}

impl OtpRecord {
    /// `pending` until it expires, even before the sweeper marks it.
    pub fn effective_status(&self, now: i64) -> OtpStatus {
        if self.status == OtpStatus::Pending && self.expires_at <= now {
            OtpStatus::Expired
        } else {
            self.status
        }
    }

    pub fn attempts_left(&self) -> i64 {
        (self.max_attempts - self.attempts).max(0)
    }
}

const COLUMNS: &str = "id, owner_id, phone, session_id, pool, message_id, requested_mode, mode, code_mac, \
                       code_length, locale, brand, template, status, reason, attempts, max_attempts, sends, \
                       ttl_ms, expires_at, last_sent_at, api_key_id, client_ip, created_at, updated_at, approved_at";

fn from_row(row: &AnyRow) -> Result<OtpRecord> {
    Ok(OtpRecord {
        id: row.try_get("id")?,
        owner_id: row.try_get("owner_id")?,
        phone: row.try_get("phone")?,
        session_id: row.try_get("session_id")?,
        pool: row.try_get("pool")?,
        message_id: row.try_get("message_id")?,
        requested_mode: parse_column(&row.try_get::<String, _>("requested_mode")?, "otp.requested_mode")?,
        mode: parse_column(&row.try_get::<String, _>("mode")?, "otp.mode")?,
        code_mac: row.try_get("code_mac")?,
        code_length: row.try_get("code_length")?,
        locale: row.try_get("locale")?,
        brand: row.try_get("brand")?,
        template: row.try_get("template")?,
        status: parse_column(&row.try_get::<String, _>("status")?, "otp.status")?,
        reason: row.try_get("reason")?,
        attempts: row.try_get("attempts")?,
        max_attempts: row.try_get("max_attempts")?,
        sends: row.try_get("sends")?,
        ttl_ms: row.try_get("ttl_ms")?,
        expires_at: row.try_get("expires_at")?,
        last_sent_at: row.try_get("last_sent_at")?,
        api_key_id: row.try_get("api_key_id")?,
        client_ip: row.try_get("client_ip")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        approved_at: row.try_get("approved_at")?,
    })
}

/// A verification to store; `message` carries its code (push mode).
pub struct NewOtp<'a> {
    pub record: &'a OtpRecord,
    pub message: Option<NewMessage<'a>>,
}

/// A new code for a pending verification (resend, or the switch to inbound mode).
pub struct NewCode<'a> {
    pub id: &'a str,
    /// The session that sends it (may differ from the first one's).
    pub session_id: &'a str,
    pub code_mac: &'a str,
    pub mode: OtpMode,
    pub message: Option<NewMessage<'a>>,
    pub expires_at: i64,
    /// Refused unless fewer sends than this were made…
    pub max_sends: i64,
    /// …and the last one is at least this old.
    pub sent_before: i64,
}

#[derive(Debug, Default, Clone)]
pub struct OtpFilter {
    pub owner_id: Option<String>,
    pub phone: Option<String>,
    pub status: Option<OtpStatus>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub before: Option<(i64, String)>,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneFailures {
    pub failures: i64,
    pub last_failure_at: i64,
}

#[derive(Debug, Clone)]
pub struct OtpTemplateRecord {
    pub name: String,
    pub locale: String,
    pub body: String,
    pub updated_at: i64,
}

const REPLACED: &str = "replaced by a newer verification";

impl Store {
    /// Stores a verification and its message in one transaction. An earlier pending
    /// verification of the same phone (same tenant) is canceled, with its queued message.
    /// Returns the ids of the verifications it replaced.
    pub async fn insert_otp(&self, new: NewOtp<'_>) -> Result<Vec<String>> {
        let message = new.message.as_ref().map(|m| m.record(new.record.created_at));
        let mut replaced = self.insert_otps(&[(new.record.clone(), message)]).await?;
        Ok(replaced.pop().unwrap_or_default())
    }

    /// [`Store::insert_otp`] for several verifications (and their messages, made by
    /// [`NewMessage::record`]) in one transaction and a few statements. A tenant's phone may
    /// appear at most once. Returns the replaced ids of each, in order.
    pub async fn insert_otps(
        &self,
        batch: &[(OtpRecord, Option<MessageRecord>)],
    ) -> Result<Vec<Vec<String>>> {
        let mut replaced = vec![Vec::new(); batch.len()];
        if batch.is_empty() {
            return Ok(replaced);
        }
        let now = batch.iter().map(|(record, _)| record.created_at).max().unwrap_or_default();
        let mut connection = self.writer().await?;
        let mut tx = connection.begin().await?;
        let mut owners: Vec<&str> = batch.iter().map(|(record, _)| record.owner_id.as_str()).collect();
        owners.sort_unstable();
        owners.dedup();
        let mut stale_messages = Vec::new();
        for owner in owners {
            let phones: Vec<&str> =
                batch.iter().filter(|(r, _)| r.owner_id == owner).map(|(r, _)| r.phone.as_str()).collect();
            let phones = InList::new(&phones);
            let pending = sqlx::query(self.sql(&format!(
                "SELECT id, phone, message_id FROM otp_verifications \
                 WHERE owner_id = ? AND phone IN ({}) AND status = 'pending'",
                phones.marks()
            )))
            .bind(owner);
            for row in phones.bind(pending).fetch_all(&mut *tx).await? {
                let phone: String = row.try_get("phone")?;
                let Some(at) = batch.iter().position(|(r, _)| r.owner_id == owner && r.phone == phone) else {
                    continue;
                };
                replaced[at].push(row.try_get::<String, _>("id")?);
                stale_messages.extend(row.try_get::<Option<String>, _>("message_id")?);
            }
        }
        let stale: Vec<&str> = replaced.iter().flatten().map(String::as_str).collect();
        if !stale.is_empty() {
            let stale = InList::new(&stale);
            let cancel = sqlx::query(self.sql(&format!(
                "UPDATE otp_verifications SET status = 'canceled', reason = ?, updated_at = ? \
                 WHERE id IN ({}) AND status = 'pending'",
                stale.marks()
            )))
            .bind(REPLACED)
            .bind(now);
            stale.bind(cancel).execute(&mut *tx).await?;
        }
        for message_id in &stale_messages {
            self.cancel_queued_message(&mut tx, message_id, REPLACED, now).await?;
        }
        let messages: Vec<MessageRecord> = batch.iter().filter_map(|(_, m)| m.clone()).collect();
        self.insert_message_rows(&mut tx, &messages).await?;
        for run in row_runs(batch) {
            self.insert_otp_run(&mut tx, run).await?;
        }
        tx.commit().await?;
        Ok(replaced)
    }

    /// One `INSERT` of the run's verifications (see [`crate::batch`]).
    async fn insert_otp_run(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        run: &[(OtpRecord, Option<MessageRecord>)],
    ) -> Result<()> {
        let row = format!("({})", placeholders(COLUMNS.split(',').count()));
        let rows = vec![row.as_str(); run.len()].join(", ");
        let mut insert =
            sqlx::query(self.sql(&format!("INSERT INTO otp_verifications ({COLUMNS}) VALUES {rows}")));
        for (record, _) in run {
            insert = insert
                .bind(&record.id)
                .bind(&record.owner_id)
                .bind(&record.phone)
                .bind(&record.session_id)
                .bind(&record.pool)
                .bind(&record.message_id)
                .bind(record.requested_mode.as_str())
                .bind(record.mode.as_str())
                .bind(&record.code_mac)
                .bind(record.code_length)
                .bind(&record.locale)
                .bind(&record.brand)
                .bind(&record.template)
                .bind(record.status.as_str())
                .bind(&record.reason)
                .bind(record.attempts)
                .bind(record.max_attempts)
                .bind(record.sends)
                .bind(record.ttl_ms)
                .bind(record.expires_at)
                .bind(record.last_sent_at)
                .bind(&record.api_key_id)
                .bind(&record.client_ip)
                .bind(record.created_at)
                .bind(record.updated_at)
                .bind(record.approved_at);
        }
        insert.execute(&mut **tx).await.map_err(StoreError::conflict_on_unique("verification"))?;
        Ok(())
    }

    async fn cancel_queued_message(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        message_id: &str,
        reason: &str,
        now: i64,
    ) -> Result<()> {
        let canceled = sqlx::query(self.sql(
            "UPDATE messages SET status = 'canceled', reason = ?, lease_until = NULL, updated_at = ? \
             WHERE id = ? AND status = 'queued'",
        ))
        .bind(reason)
        .bind(now)
        .bind(message_id)
        .execute(&mut **tx)
        .await?;
        if canceled.rows_affected() > 0 {
            self.insert_event(&mut **tx, message_id, MessageStatus::Canceled, Some(reason), now).await?;
        }
        Ok(())
    }

    pub async fn otp(&self, id: &str) -> Result<Option<OtpRecord>> {
        let row = sqlx::query(self.sql(&format!("SELECT {COLUMNS} FROM otp_verifications WHERE id = ?")))
            .bind(id)
            .fetch_optional(&mut *self.reader().await?)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// A verification with its phone's consecutive failures, in one read (verify by id).
    pub async fn otp_with_phone_failures(
        &self,
        id: &str,
    ) -> Result<Option<(OtpRecord, Option<PhoneFailures>)>> {
        let row = sqlx::query(self.sql(&format!(
            "SELECT {COLUMNS}, \
             (SELECT f.failures FROM otp_phone_failures f \
              WHERE f.owner_id = otp_verifications.owner_id AND f.phone = otp_verifications.phone) AS phone_failures, \
             (SELECT f.last_failure_at FROM otp_phone_failures f \
              WHERE f.owner_id = otp_verifications.owner_id AND f.phone = otp_verifications.phone) AS phone_failed_at \
             FROM otp_verifications WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(&mut *self.reader().await?)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let failures = match (row.try_get("phone_failures")?, row.try_get("phone_failed_at")?) {
            (Some(failures), Some(last_failure_at)) => Some(PhoneFailures { failures, last_failure_at }),
            _ => None,
        };
        Ok(Some((from_row(&row)?, failures)))
    }

    /// The tenant's pending verification of `phone` (there is at most one).
    pub async fn pending_otp(&self, owner_id: &str, phone: &str) -> Result<Option<OtpRecord>> {
        let row = sqlx::query(self.sql(&format!(
            "SELECT {COLUMNS} FROM otp_verifications WHERE owner_id = ? AND phone = ? AND status = 'pending' \
             ORDER BY created_at DESC LIMIT 1"
        )))
        .bind(owner_id)
        .bind(phone)
        .fetch_optional(&mut *self.reader().await?)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The pending inbound-mode verifications of `phone` whose code is to arrive at `session`.
    pub async fn pending_inbound_otps(&self, session_id: &str, phone: &str) -> Result<Vec<OtpRecord>> {
        let rows = sqlx::query(self.sql(&format!(
            "SELECT {COLUMNS} FROM otp_verifications WHERE phone = ? AND session_id = ? AND status = 'pending' \
             AND mode = 'inbound'"
        )))
        .bind(phone)
        .bind(session_id)
        .fetch_all(&mut *self.reader().await?)
        .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn otp_by_message(&self, message_id: &str) -> Result<Option<OtpRecord>> {
        let row =
            sqlx::query(self.sql(&format!("SELECT {COLUMNS} FROM otp_verifications WHERE message_id = ?")))
                .bind(message_id)
                .fetch_optional(&mut *self.reader().await?)
                .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Approves a pending, unexpired verification with attempts left. False when another
    /// request got there first or it is no longer pending.
    pub async fn approve_otp(&self, id: &str, now: i64) -> Result<bool> {
        Ok(self.approve_otps(&[id], now).await?.first().copied().unwrap_or(false))
    }

    /// [`Store::approve_otp`] for several verifications at once; says for each whether it was
    /// approved (it was pending, in time and not locked).
    pub async fn approve_otps(&self, ids: &[&str], now: i64) -> Result<Vec<bool>> {
        let approved = self
            .update_ids(
                "otp_verifications",
                "status = 'approved', approved_at = ?, updated_at = ?",
                ids,
                "status = 'pending' AND expires_at > ? AND attempts < max_attempts",
                |query| query.bind(now).bind(now),
                |query| query.bind(now),
            )
            .await?;
        Ok(ids.iter().map(|id| approved.iter().any(|a| a == id)).collect())
    }

    /// Counts a wrong code; the last allowed one turns the verification to `max_attempts`.
    /// Returns the verification as it is now, or `None` when it was no longer pending.
    pub async fn record_otp_failure(&self, id: &str, now: i64) -> Result<Option<OtpRecord>> {
        let done = sqlx::query(self.sql(
            // `status` before `attempts`: MySQL evaluates assignments left to right, on the
            // values already assigned.
            "UPDATE otp_verifications SET \
             status = CASE WHEN attempts + 1 >= max_attempts THEN 'max_attempts' ELSE status END, \
             attempts = attempts + 1, updated_at = ? WHERE id = ? AND status = 'pending'",
        ))
        .bind(now)
        .bind(id)
        .execute(&mut *self.writer().await?)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.otp(id).await
    }

    /// Moves a verification from one of `from` to `to`; false when it was in none of them.
    pub async fn set_otp_status(
        &self,
        id: &str,
        to: OtpStatus,
        from: OtpStatus,
        reason: Option<&str>,
    ) -> Result<bool> {
        let now = now_ms();
        let mut connection = self.writer().await?;
        let mut tx = connection.begin().await?;
        let row =
            sqlx::query(self.sql("SELECT message_id FROM otp_verifications WHERE id = ? AND status = ?"))
                .bind(id)
                .bind(from.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        let Some(row) = row else { return Ok(false) };
        let done = sqlx::query(self.sql(
            "UPDATE otp_verifications SET status = ?, reason = ?, updated_at = ? WHERE id = ? AND status = ?",
        ))
        .bind(to.as_str())
        .bind(reason)
        .bind(now)
        .bind(id)
        .bind(from.as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        if to == OtpStatus::Canceled
            && let Some(message_id) = row.try_get::<Option<String>, _>("message_id")?
        {
            self.cancel_queued_message(&mut tx, &message_id, reason.unwrap_or("canceled"), now).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Replaces the code of a pending verification (and queues its message), if the send cap
    /// and cooldown allow. The previous message, if still queued, is canceled.
    pub async fn replace_otp_code(&self, new: NewCode<'_>) -> Result<Option<OtpRecord>> {
        let now = now_ms();
        let mut connection = self.writer().await?;
        let mut tx = connection.begin().await?;
        let previous = sqlx::query(
            self.sql("SELECT message_id FROM otp_verifications WHERE id = ? AND status = 'pending'"),
        )
        .bind(new.id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(previous) = previous else { return Ok(None) };
        let sends = i64::from(new.message.is_some());
        let done = sqlx::query(self.sql(
            "UPDATE otp_verifications SET session_id = ?, code_mac = ?, mode = ?, message_id = ?, \
             sends = sends + ?, last_sent_at = ?, expires_at = ?, updated_at = ? \
             WHERE id = ? AND status = 'pending' AND sends < ? AND last_sent_at <= ?",
        ))
        .bind(new.session_id)
        .bind(new.code_mac)
        .bind(new.mode.as_str())
        .bind(new.message.as_ref().map(|m| m.id))
        .bind(sends)
        .bind(now)
        .bind(new.expires_at)
        .bind(now)
        .bind(new.id)
        .bind(new.max_sends)
        .bind(new.sent_before)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        if let Some(old) = previous.try_get::<Option<String>, _>("message_id")? {
            self.cancel_queued_message(&mut tx, &old, "a new code was sent", now).await?;
        }
        if let Some(message) = &new.message {
            self.insert_message_row(&mut *tx, message, now).await?;
        }
        tx.commit().await?;
        self.otp(new.id).await
    }

    /// Marks pending verifications whose time is up as `expired`; returns them.
    pub async fn expire_otps(&self, now: i64, limit: u32) -> Result<Vec<OtpRecord>> {
        let rows = sqlx::query(self.sql(&format!(
            "SELECT {COLUMNS} FROM otp_verifications WHERE status = 'pending' AND expires_at <= ? LIMIT ?"
        )))
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&mut *self.reader().await?)
        .await?;
        let mut expired = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut record = from_row(row)?;
            let done = sqlx::query(self.sql(
                "UPDATE otp_verifications SET status = 'expired', updated_at = ? WHERE id = ? AND status = 'pending'",
            ))
            .bind(now)
            .bind(&record.id)
            .execute(&mut *self.writer().await?)
            .await?;
            if done.rows_affected() > 0 {
                record.status = OtpStatus::Expired;
                expired.push(record);
            }
        }
        Ok(expired)
    }

    /// Retention: removes verifications created before `cutoff`.
    pub async fn delete_otps_before(&self, cutoff: i64) -> Result<u64> {
        let done = sqlx::query(
            self.sql("DELETE FROM otp_verifications WHERE created_at < ? AND status <> 'pending'"),
        )
        .bind(cutoff)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected())
    }

    /// Newest first.
    pub async fn otps(&self, filter: &OtpFilter) -> Result<Vec<OtpRecord>> {
        let mut conditions = Where::default();
        conditions
            .text("owner_id = ?", filter.owner_id.as_deref())
            .text("phone = ?", filter.phone.as_deref())
            .text("status = ?", filter.status.map(OtpStatus::as_str))
            .int("created_at >= ?", filter.since)
            .int("created_at < ?", filter.until)
            .before(filter.before.as_ref());
        let sql = format!(
            "SELECT {COLUMNS} FROM otp_verifications {} ORDER BY created_at DESC, id DESC LIMIT ?",
            conditions.sql()
        );
        let query = conditions.bind(sqlx::query(self.sql(&sql)));
        let rows = query.bind(i64::from(filter.limit)).fetch_all(&mut *self.reader().await?).await?;
        rows.iter().map(from_row).collect()
    }

    /// Counts by status of the verifications created since `since` (all tenants with `None`).
    pub async fn otp_counts(&self, owner_id: Option<&str>, since: i64) -> Result<Vec<(OtpStatus, i64)>> {
        let sql = match owner_id {
            Some(_) => {
                "SELECT status, COUNT(*) AS n FROM otp_verifications WHERE created_at >= ? AND owner_id = ? GROUP BY status"
            }
            None => {
                "SELECT status, COUNT(*) AS n FROM otp_verifications WHERE created_at >= ? GROUP BY status"
            }
        };
        let mut query = sqlx::query(self.sql(sql)).bind(since);
        if let Some(owner) = owner_id {
            query = query.bind(owner);
        }
        let rows = query.fetch_all(&mut *self.reader().await?).await?;
        rows.iter()
            .map(|row| {
                let status = parse_column(&row.try_get::<String, _>("status")?, "otp.status")?;
                Ok((status, row.try_get("n")?))
            })
            .collect()
    }

    pub async fn phone_failures(&self, owner_id: &str, phone: &str) -> Result<Option<PhoneFailures>> {
        let row = sqlx::query(self.sql(
            "SELECT failures, last_failure_at FROM otp_phone_failures WHERE owner_id = ? AND phone = ?",
        ))
        .bind(owner_id)
        .bind(phone)
        .fetch_optional(&mut *self.reader().await?)
        .await?;
        row.map(|row| {
            Ok(PhoneFailures {
                failures: row.try_get("failures")?,
                last_failure_at: row.try_get("last_failure_at")?,
            })
        })
        .transpose()
    }

    /// One more consecutive failure for `phone`; returns the new count.
    pub async fn add_phone_failure(&self, owner_id: &str, phone: &str, now: i64) -> Result<i64> {
        for _ in 0..3 {
            let updated = sqlx::query(self.sql(
                "UPDATE otp_phone_failures SET failures = failures + 1, last_failure_at = ? \
                 WHERE owner_id = ? AND phone = ?",
            ))
            .bind(now)
            .bind(owner_id)
            .bind(phone)
            .execute(&mut *self.writer().await?)
            .await?;
            if updated.rows_affected() == 0 {
                let inserted = sqlx::query(self.sql(
                    "INSERT INTO otp_phone_failures (owner_id, phone, failures, last_failure_at) VALUES (?, ?, 1, ?)",
                ))
                .bind(owner_id)
                .bind(phone)
                .bind(now)
                .execute(&mut *self.writer().await?)
                .await
                .map_err(StoreError::conflict_on_unique("failure counter"));
                match inserted {
                    Ok(_) => {}
                    Err(StoreError::Conflict { .. }) => continue, // created concurrently: count again
                    Err(other) => return Err(other),
                }
            }
            return Ok(self.phone_failures(owner_id, phone).await?.map_or(1, |f| f.failures));
        }
        Err(StoreError::Conflict { entity: "failure counter" })
    }

    /// A success clears the phone's failures; true when there were any.
    pub async fn clear_phone_failures(&self, owner_id: &str, phone: &str) -> Result<bool> {
        let done = sqlx::query(self.sql("DELETE FROM otp_phone_failures WHERE owner_id = ? AND phone = ?"))
            .bind(owner_id)
            .bind(phone)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn otp_templates(&self, owner_id: &str) -> Result<Vec<OtpTemplateRecord>> {
        let rows = sqlx::query(self.sql(
            "SELECT name, locale, body, updated_at FROM otp_templates WHERE owner_id = ? ORDER BY name, locale",
        ))
        .bind(owner_id)
        .fetch_all(&mut *self.reader().await?)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(OtpTemplateRecord {
                    name: row.try_get("name")?,
                    locale: row.try_get("locale")?,
                    body: row.try_get("body")?,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// Creates or replaces a template.
    pub async fn put_otp_template(&self, owner_id: &str, name: &str, locale: &str, body: &str) -> Result<()> {
        let mut connection = self.writer().await?;
        let mut tx = connection.begin().await?;
        sqlx::query(self.sql("DELETE FROM otp_templates WHERE owner_id = ? AND name = ? AND locale = ?"))
            .bind(owner_id)
            .bind(name)
            .bind(locale)
            .execute(&mut *tx)
            .await?;
        sqlx::query(self.sql(
            "INSERT INTO otp_templates (owner_id, name, locale, body, updated_at) VALUES (?, ?, ?, ?, ?)",
        ))
        .bind(owner_id)
        .bind(name)
        .bind(locale)
        .bind(body)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(StoreError::conflict_on_unique("template"))?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_otp_template(&self, owner_id: &str, name: &str, locale: &str) -> Result<bool> {
        let done =
            sqlx::query(self.sql("DELETE FROM otp_templates WHERE owner_id = ? AND name = ? AND locale = ?"))
                .bind(owner_id)
                .bind(name)
                .bind(locale)
                .execute(&mut *self.writer().await?)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The tenant's OTP settings as stored (JSON), if any.
    pub async fn otp_settings(&self, owner_id: &str) -> Result<Option<String>> {
        let row = sqlx::query(self.sql("SELECT settings FROM otp_settings WHERE owner_id = ?"))
            .bind(owner_id)
            .fetch_optional(&mut *self.reader().await?)
            .await?;
        Ok(row.map(|r| r.try_get("settings")).transpose()?)
    }

    pub async fn put_otp_settings(&self, owner_id: &str, settings: &str) -> Result<()> {
        let mut connection = self.writer().await?;
        let mut tx = connection.begin().await?;
        sqlx::query(self.sql("DELETE FROM otp_settings WHERE owner_id = ?"))
            .bind(owner_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(self.sql("INSERT INTO otp_settings (owner_id, settings, updated_at) VALUES (?, ?, ?)"))
            .bind(owner_id)
            .bind(settings)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(StoreError::conflict_on_unique("settings"))?;
        tx.commit().await?;
        Ok(())
    }
}
