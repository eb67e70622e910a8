//! Listings and counts stay cheap however long the history: SQLite's plan for each filter served
//! by an index reads the matching rows through it. Message listings also read newest first and
//! stop at the page's end (no sort of every match); the messages and verifications still
//! pending, few by nature, are sorted.

use sqlx::Row;
use wagate_core::{MessageStatus, OtpStatus, SessionId};

use crate::filter::Where;
use crate::messages::{COUNT_SENT_SINCE, QUEUE_STATEMENTS, claim_statement, message_listing};
use crate::otp::otp_listing;
use crate::stats::{OLDEST_QUEUED, OUTBOX_DEPTH};
use crate::{MessageFilter, OtpFilter, Store};

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&Store::sqlite_url(dir.path())).await.unwrap();
    store.migrate().await.unwrap();
    (dir, store)
}

/// SQLite's query plan, one step per line.
async fn plan(store: &Store, sql: &str, conditions: &Where, limit: i64) -> String {
    let explain = format!("EXPLAIN QUERY PLAN {sql}");
    let query = conditions.bind(sqlx::query(sqlx::AssertSqlSafe(explain))).bind(limit);
    let rows = query.fetch_all(&mut *store.reader().await.unwrap()).await.unwrap();
    rows.iter().map(|row| row.try_get::<String, _>("detail").unwrap()).collect::<Vec<_>>().join("\n")
}

fn uses_index(plan: &str, index: &str) -> bool {
    plan.lines().any(|step| step.contains("USING INDEX") && step.split_whitespace().any(|word| word == index))
}

fn assert_served_by(plan: &str, index: &str, what: &str) {
    assert!(uses_index(plan, index), "{what}: not served by {index}:\n{plan}");
    // A sort of the ties on `created_at` ("RIGHT PART") ends with the page; a sort of every
    // match would not.
    assert!(!plan.contains("USE TEMP B-TREE FOR ORDER BY"), "{what}: sorts every match:\n{plan}");
}

#[tokio::test]
async fn every_message_listing_reads_only_its_page() {
    let (_dir, store) = store().await;
    let owner = || Some("owner".to_owned());
    let cases: Vec<(&str, MessageFilter, &str)> = vec![
        ("everything (an administrator)", MessageFilter::default(), "messages_created"),
        ("a tenant's", MessageFilter { owner_id: owner(), ..Default::default() }, "messages_owner"),
        (
            "a tenant's, a later page",
            MessageFilter { owner_id: owner(), before: Some((5, "id".into())), ..Default::default() },
            "messages_owner",
        ),
        (
            "a session's",
            MessageFilter { owner_id: owner(), session_id: Some("one".into()), ..Default::default() },
            "messages_session_created",
        ),
        (
            "every tenant's of a session",
            MessageFilter { session_id: Some("one".into()), ..Default::default() },
            "messages_session_created",
        ),
        (
            "everything since a time, next page",
            MessageFilter { since: Some(1), before: Some((5, "id".into())), ..Default::default() },
            "messages_created",
        ),
    ];
    for (what, filter, index) in cases {
        let (sql, conditions) = message_listing(&filter);
        assert_served_by(&plan(&store, &sql, &conditions, 50).await, index, what);
    }
}

#[tokio::test]
async fn what_waits_is_read_through_the_queue_not_the_history() {
    let (_dir, store) = store().await;
    let owner = || Some("owner".to_owned());
    for status in [MessageStatus::Queued, MessageStatus::Sending] {
        let cases: Vec<(&str, MessageFilter)> = vec![
            ("everything", MessageFilter { status: Some(status), ..Default::default() }),
            ("a tenant's", MessageFilter { status: Some(status), owner_id: owner(), ..Default::default() }),
            (
                "a tenant's, a later page",
                MessageFilter {
                    status: Some(status),
                    owner_id: owner(),
                    before: Some((5, "id".into())),
                    ..Default::default()
                },
            ),
            (
                "every tenant's of a session",
                MessageFilter { status: Some(status), session_id: Some("one".into()), ..Default::default() },
            ),
            (
                "a session's",
                MessageFilter {
                    status: Some(status),
                    owner_id: owner(),
                    session_id: Some("one".into()),
                    ..Default::default()
                },
            ),
        ];
        for (what, filter) in cases {
            let (sql, conditions) = message_listing(&filter);
            let plan = plan(&store, &sql, &conditions, 50).await;
            assert!(uses_index(&plan, "messages_waiting"), "{what} {status}: not through the queue:\n{plan}");
        }
    }
}

#[tokio::test]
async fn the_queue_and_the_idempotency_keys_have_indexes_of_their_own() {
    let (_dir, store) = store().await;
    // Every `?` of these statements is a session or a time; any text does for a plan.
    let plan_of = async |sql: &str| {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")));
        for _ in 0..sql.matches('?').count() {
            query = query.bind("one");
        }
        let rows = query.fetch_all(&mut *store.reader().await.unwrap()).await.unwrap();
        rows.iter().map(|row| row.try_get::<String, _>("detail").unwrap()).collect::<Vec<_>>().join("\n")
    };
    let claim = plan_of(&claim_statement(32)).await;
    assert!(claim.contains("USING INDEX messages_waiting (session_id=?"), "the claim:\n{claim}");
    assert!(!claim.contains("TEMP B-TREE"), "the claim sorts:\n{claim}");
    for sql in QUEUE_STATEMENTS.into_iter().chain([OUTBOX_DEPTH, OLDEST_QUEUED]) {
        let plan = plan_of(sql).await;
        assert!(uses_index(&plan, "messages_waiting"), "{sql}:\n{plan}");
    }
    let indexes =
        sqlx::query("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages'")
            .fetch_all(&mut *store.reader().await.unwrap())
            .await
            .unwrap();
    let names: Vec<String> = indexes.iter().map(|row| row.try_get("name").unwrap()).collect();
    for full in ["messages_queue", "messages_idempotency", "messages_session_sent"] {
        assert!(!names.contains(&full.to_owned()), "{full} replaced by its partial index: {names:?}");
    }
    let repeat = plan_of("SELECT id FROM messages WHERE owner_id = ? AND idempotency_key = ?").await;
    assert!(
        repeat.contains("USING INDEX messages_idempotency_keys (owner_id=? AND idempotency_key=?)"),
        "{repeat}"
    );
}

#[tokio::test]
async fn every_otp_listing_reads_only_its_page() {
    let (_dir, store) = store().await;
    let owner = || Some("owner".to_owned());
    let cases: Vec<(&str, OtpFilter, &str)> = vec![
        ("everything (an administrator)", OtpFilter::default(), "otp_verifications_created"),
        ("a tenant's", OtpFilter { owner_id: owner(), ..Default::default() }, "otp_verifications_owner"),
        (
            "a tenant's, a later page",
            OtpFilter { owner_id: owner(), before: Some((5, "id".into())), ..Default::default() },
            "otp_verifications_owner",
        ),
        (
            "every tenant's still pending",
            OtpFilter { status: Some(OtpStatus::Pending), ..Default::default() },
            "otp_verifications_expiry",
        ),
        (
            "a tenant's for one number",
            OtpFilter { owner_id: owner(), phone: Some("+6281200000001".into()), ..Default::default() },
            "otp_verifications_phone_created",
        ),
        (
            "every tenant's for one number",
            OtpFilter { phone: Some("+6281200000001".into()), ..Default::default() },
            "otp_verifications_phone_created",
        ),
    ];
    for (what, filter, index) in cases {
        let (sql, conditions) = otp_listing(&filter);
        let plan = plan(&store, &sql, &conditions, 50).await;
        assert!(uses_index(&plan, index), "{what}: not served by {index}:\n{plan}");
    }
}

#[tokio::test]
async fn the_sending_caps_count_reads_only_the_window() {
    let (_dir, store) = store().await;
    let mut conditions = Where::default();
    conditions
        .text("session_id = ?", Some(SessionId::parse("one").unwrap().as_str()))
        .int("sent_at >= ?", Some(0));
    let plan = plan(&store, COUNT_SENT_SINCE, &conditions, 1_000).await;
    assert!(plan.contains("messages_session_sent_at (session_id=? AND sent_at>?)"), "{plan}");
}
