//! Changes to verifications: creating them (with their message), approving, failing, resending, expiring and retention.

use sqlx::Row;
use wagate_core::{MessageStatus, OtpStatus};

use super::{COLUMNS, NewCode, NewOtp, OtpRecord, REPLACED, from_row};
use crate::batch::{InList, placeholders, row_runs};
use crate::{MessageRecord, Result, Store, StoreError, now_ms};

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
        self.retry_deadlocks(|| self.insert_otps_once(batch)).await
    }

    async fn insert_otps_once(
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
}
