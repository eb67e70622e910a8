//! Group-commit writers of the OTP service: new verifications and approvals of several
//! requests written in one transaction each.

use std::sync::Arc;

use wagate_store::{MessageRecord, OtpRecord, Store};

use crate::group_commit::GroupCommit;
use crate::time::now_ms;

/// A new verification with its message, as the group writer stores it.
pub(super) type NewVerification = (OtpRecord, Option<MessageRecord>);

/// Writes new verifications; answers with the ids of the messages stored.
pub(super) type NewVerifications = GroupCommit<NewVerification, Vec<String>>;

/// Writes approvals: the approval time, or `None` when the verification could no longer be
/// approved.
pub(super) type Approvals = GroupCommit<String, Option<i64>>;

/// Several requests' verifications in one transaction. A tenant's phone appears at most once
/// per write, so that a newer verification replaces an older one in order.
pub(super) fn verification_writer(store: Store) -> NewVerifications {
    GroupCommit::start(
        128,
        |batch, (new, _)| {
            !batch.iter().any(|(old, _)| old.owner_id == new.owner_id && old.phone == new.phone)
        },
        Arc::new(move |batch: Vec<NewVerification>| {
            let store = store.clone();
            Box::pin(async move { store.insert_otps(&batch).await })
        }),
    )
}

/// Several requests' approvals in one transaction. An id appears at most once per write, so
/// that of two concurrent right answers exactly one approves.
pub(super) fn approval_writer(store: Store) -> Approvals {
    GroupCommit::start(
        128,
        |batch, id| !batch.contains(id),
        Arc::new(move |ids: Vec<String>| {
            let store = store.clone();
            Box::pin(async move {
                let now = now_ms();
                let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                let approved = store.approve_otps(&ids, now).await?;
                Ok(approved.into_iter().map(|approved| approved.then_some(now)).collect())
            })
        }),
    )
}
