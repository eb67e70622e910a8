//! The same store scenario on every supported database: SQLite (a temp file), PostgreSQL and
//! MariaDB/MySQL (local servers, started by scripts/test.sh; URLs overridable with
//! WAGATE_TEST_POSTGRES_URL and WAGATE_TEST_MYSQL_URL). Each run works in a fresh schema or
//! database and drops it afterwards.

use wagate_core::{
    EngineKind, MessageContent, MessageStatus, OtpMode, OtpStatus, Role, Scope, ScopeSet, SessionId,
    SessionStatus,
};
use wagate_store::{
    ActivityFilter, ActivityRecord, CacheTopic, Claim, Fence, Inserted, LinkedAccount, MessageFilter,
    NewApiKey, NewCode, NewMessage, NewOtp, NewSession, NewUser, NodeRecord, OtpFilter, OtpRecord, Retained,
    Store, StoreError,
};
use wagate_testkit::{DatabaseKind, TestDatabase};

async fn scenario(store: Store) {
    store.migrate().await.unwrap();
    store.migrate().await.expect("migrations are idempotent");
    store.ping().await.unwrap();
    leases(&store).await;
    rate_limits(&store).await;

    // Settings: the first value wins.
    assert_eq!(store.setting_or_insert("server_secret", "one").await.unwrap(), "one");
    assert_eq!(store.setting_or_insert("server_secret", "two").await.unwrap(), "one");

    // Users.
    let admin = store
        .insert_user(NewUser { username: "admin", password_hash: "h1", role: Role::Admin })
        .await
        .unwrap();
    let err = store
        .insert_user(NewUser { username: "admin", password_hash: "h2", role: Role::User })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert_eq!(store.count_users().await.unwrap(), 1);
    assert!(store.set_user_password(&admin.id, "h3").await.unwrap());
    assert_eq!(store.user_by_username("admin").await.unwrap().unwrap().password_hash, "h3");
    assert!(store.set_user_disabled(&admin.id, true).await.unwrap());
    assert!(store.user(&admin.id).await.unwrap().unwrap().disabled);

    // API keys.
    let one = SessionId::parse("one").unwrap();
    let scopes = ScopeSet::new([Scope::Send, Scope::Read]);
    let sessions = [one.clone()];
    let key = store
        .insert_api_key(NewApiKey {
            user_id: &admin.id,
            name: "backend",
            prefix: "wag_abcdefgh",
            key_hash: "hash-1",
            scopes: &scopes,
            sessions: Some(&sessions),
            expires_at: None,
        })
        .await
        .unwrap();
    let found = store.api_key_by_hash("hash-1").await.unwrap().unwrap();
    assert_eq!(
        (found.id.as_str(), found.scopes.clone(), found.sessions.clone()),
        (key.id.as_str(), scopes, Some(vec![one.clone()]))
    );
    assert!(store.revoke_api_key(&key.id).await.unwrap());
    assert!(!store.revoke_api_key(&key.id).await.unwrap(), "revoking twice changes nothing");
    assert!(store.api_key(&key.id).await.unwrap().unwrap().revoked_at.is_some());
    store.touch_api_key(&key.id).await.unwrap();
    assert_eq!(store.api_keys(Some(&admin.id)).await.unwrap().len(), 1);

    // Sessions.
    let new = |id| NewSession {
        id,
        owner_id: &admin.id,
        name: "Shop",
        engine: EngineKind::Sandbox,
        webhook_url: None,
    };
    store.insert_session(new(&one)).await.unwrap();
    assert!(matches!(store.insert_session(new(&one)).await.unwrap_err(), StoreError::Conflict { .. }));
    // Routing reads an owner's sessions from memory: every write through the store shows at once.
    assert_eq!(store.owner_sessions(&admin.id).await.unwrap()[0].status, SessionStatus::Created);
    assert!(store.set_session_status(&one, SessionStatus::Connected, None).await.unwrap());
    assert_eq!(store.owner_sessions(&admin.id).await.unwrap()[0].status, SessionStatus::Connected);
    assert!(store.pool_sessions(&admin.id, "otp").await.unwrap().is_empty());
    assert!(store.set_session_pool(&one, Some("otp")).await.unwrap());
    assert_eq!(store.pool_sessions(&admin.id, "otp").await.unwrap().len(), 1);
    assert!(store.pool_sessions(&admin.id, "other").await.unwrap().is_empty());
    let account = LinkedAccount {
        phone: "+6281234567890".into(),
        lid: Some("1@lid".into()),
        push_name: Some("Toko ✓".into()),
    };
    assert!(store.set_session_account(&one, Some(&account)).await.unwrap());
    assert!(store.set_session_auto_connect(&one, true).await.unwrap());
    assert!(store.rename_session(&one, "Shop 2").await.unwrap());
    assert!(store.set_session_webhook(&one, Some("https://example.com/h")).await.unwrap());
    let record = store.session(&one).await.unwrap().unwrap();
    assert_eq!(record.status, SessionStatus::Connected);
    assert_eq!(record.account, Some(account));
    assert!(record.connected_at.is_some() && record.auto_connect);
    assert_eq!(record.name, "Shop 2");
    assert_eq!(store.auto_connect_sessions().await.unwrap().len(), 1);
    assert!(store.set_session_account(&one, None).await.unwrap());
    assert!(store.session(&one).await.unwrap().unwrap().account.is_none());
    let missing = SessionId::parse("missing").unwrap();
    assert!(!store.rename_session(&missing, "x").await.unwrap());

    // Activity log: newest first, paged.
    for n in 0..5 {
        store.insert_session_event(&one, "tick", Some(&serde_json::json!({ "n": n }))).await.unwrap();
    }
    let page = store.session_events(&one, None, 3).await.unwrap();
    assert_eq!(page.len(), 3);
    assert!(page[0].detail.as_deref().unwrap().contains("4"));
    let rest = store.session_events(&one, Some(&page[2].id), 10).await.unwrap();
    assert_eq!(rest.len(), 2);

    assert!(store.delete_session(&one).await.unwrap());
    assert!(store.owner_sessions(&admin.id).await.unwrap().is_empty());
    assert!(store.session(&one).await.unwrap().is_none());
    assert!(store.session_events(&one, None, 10).await.unwrap().is_empty());
    assert!(!store.delete_session(&one).await.unwrap());

    otp_scenario(&store, &admin.id, &one).await;
    message_listings(&store, &admin.id).await;
    activity_scenario(&store, &admin.id).await;
    sandbox_network(&store).await;
    store.close().await;
}

/// The sandbox's shared network: deliveries once per number and id, in order, followed by
/// cursor, trimmed to the latest; groups.
async fn sandbox_network(store: &Store) {
    assert_eq!(store.sandbox_latest().await.unwrap(), 0);
    assert!(store.sandbox_record("+621", "m1", "{\"n\":1}").await.unwrap());
    assert!(store.sandbox_record("+622", "m1", "{\"n\":2}").await.unwrap(), "the same id to another number");
    assert!(
        !store.sandbox_record("+621", "m1", "{\"n\":3}").await.unwrap(),
        "the same id to the same number"
    );
    assert!(store.sandbox_record("+621", "m2", "{\"n\":4}").await.unwrap());
    assert_eq!(store.sandbox_inbox("+621").await.unwrap(), ["{\"n\":1}", "{\"n\":4}"]);
    let all = store.sandbox_since(0, 10).await.unwrap();
    assert_eq!(
        all.iter().map(|(_, d)| d.as_str()).collect::<Vec<_>>(),
        ["{\"n\":1}", "{\"n\":2}", "{\"n\":4}"]
    );
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "in order: {all:?}");
    let latest = store.sandbox_latest().await.unwrap();
    assert_eq!(latest, all[2].0);
    assert_eq!(store.sandbox_since(all[0].0, 1).await.unwrap(), [all[1].clone()]);
    assert_eq!(store.sandbox_keep_latest(1).await.unwrap(), 2, "all but the latest delivery");
    assert_eq!(store.sandbox_inbox("+621").await.unwrap(), ["{\"n\":4}"]);
    assert!(store.sandbox_inbox("+622").await.unwrap().is_empty());

    store.sandbox_put_group("120363000000000001@g.us", "{\"v\":1}").await.unwrap();
    store.sandbox_put_group("120363000000000001@g.us", "{\"v\":2}").await.unwrap();
    store.sandbox_put_group("120363000000000000@g.us", "{\"v\":0}").await.unwrap();
    assert_eq!(store.sandbox_group("120363000000000001@g.us").await.unwrap().as_deref(), Some("{\"v\":2}"));
    assert_eq!(store.sandbox_group("missing@g.us").await.unwrap(), None);
    let groups = store.sandbox_groups().await.unwrap();
    assert_eq!(
        groups.iter().map(|(jid, _)| &jid[..18]).collect::<Vec<_>>(),
        ["120363000000000000", "120363000000000001"]
    );
}

/// The activity and audit log: filters, levels, pages, retention.
async fn activity_scenario(store: &Store, owner: &str) {
    let now = wagate_store::now_ms();
    let line = |n: i64, owner: Option<&str>, session: Option<&str>, kind: &str, level: &str, at: i64| {
        ActivityRecord {
            id: format!("line-{n:02}"),
            owner_id: owner.map(str::to_owned),
            actor_id: owner.map(str::to_owned),
            actor: "someone".into(),
            kind: kind.into(),
            level: level.into(),
            session_id: session.map(str::to_owned),
            ip: Some("192.0.2.7".into()),
            detail: Some(r#"{"n":1}"#.into()),
            created_at: at,
        }
    };
    let lines = [
        line(1, Some(owner), Some("s-a"), "session.connected", "info", now - 5),
        line(2, Some(owner), Some("s-b"), "message.failed", "error", now - 4),
        line(3, Some(owner), None, "auth.signed_in", "info", now - 3),
        line(4, Some("other"), Some("s-c"), "auth.sign_in_failed", "warning", now - 2),
        line(5, None, None, "webhook.dead", "error", now - 1),
        line(6, Some(owner), Some("s-a"), "session.connected", "info", now - 40 * 86_400_000),
    ];
    for record in &lines {
        store.insert_activity(record).await.unwrap();
    }
    let ids = |records: Vec<ActivityRecord>| records.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let all = ActivityFilter { limit: 50, ..ActivityFilter::default() };
    assert_eq!(
        ids(store.activity(&all).await.unwrap()),
        ["line-05", "line-04", "line-03", "line-02", "line-01", "line-06"]
    );
    let mine = ActivityFilter { owner_id: Some(owner.into()), ..all.clone() };
    assert_eq!(ids(store.activity(&mine).await.unwrap()), ["line-03", "line-02", "line-01", "line-06"]);
    let errors = ActivityFilter { levels: Some(vec!["warning".into(), "error".into()]), ..all.clone() };
    assert_eq!(ids(store.activity(&errors).await.unwrap()), ["line-05", "line-04", "line-02"]);
    let of_sessions = ActivityFilter { sessions: Some(vec!["s-a".into(), "s-c".into()]), ..mine.clone() };
    assert_eq!(ids(store.activity(&of_sessions).await.unwrap()), ["line-01", "line-06"]);
    let none = ActivityFilter { sessions: Some(vec![]), ..all.clone() };
    assert!(store.activity(&none).await.unwrap().is_empty(), "a key limited to no session sees nothing");
    let kind =
        ActivityFilter { kind: Some("session.connected".into()), since: Some(now - 60_000), ..all.clone() };
    assert_eq!(ids(store.activity(&kind).await.unwrap()), ["line-01"]);
    let first = ActivityFilter { limit: 2, ..mine.clone() };
    let page = store.activity(&first).await.unwrap();
    let next = ActivityFilter { before: page.last().map(|r| (r.created_at, r.id.clone())), ..first.clone() };
    assert_eq!(ids(store.activity(&next).await.unwrap()), ["line-01", "line-06"]);
    let stored = store.activity(&kind).await.unwrap().remove(0);
    assert_eq!((stored.ip.as_deref(), stored.detail.as_deref()), (Some("192.0.2.7"), Some(r#"{"n":1}"#)));

    assert_eq!(store.delete_old(Retained::ActivityLog, now - 30 * 86_400_000, 10).await.unwrap(), 1);
    assert_eq!(store.activity(&all).await.unwrap().len(), 5);
}

fn verification(id: &str, owner: &str, message_id: Option<&str>, now: i64) -> OtpRecord {
    OtpRecord {
        id: id.into(),
        owner_id: owner.into(),
        phone: "+6281234560001".into(),
        session_id: Some("one".into()),
        pool: None,
        message_id: message_id.map(Into::into),
        requested_mode: OtpMode::Push,
        mode: OtpMode::Push,
        code_mac: "mac-1".into(),
        code_length: 6,
        locale: "en".into(),
        brand: Some("Acme ✓".into()),
        template: None,
        status: OtpStatus::Pending,
        reason: None,
        attempts: 0,
        max_attempts: 2,
        sends: 1,
        ttl_ms: 300_000,
        expires_at: now + 300_000,
        last_sent_at: now,
        api_key_id: None,
        client_ip: Some("127.0.0.1".into()),
        created_at: now,
        updated_at: now,
        approved_at: None,
    }
}

/// Every filter of the message listing returns what filtering the whole listing would, whichever
/// index serves it (the filters are phrased for the indexes: `store::listing_plans`).
async fn message_listings(store: &Store, owner: &str) {
    let session = &SessionId::parse("listed").unwrap();
    let new = NewSession {
        id: session,
        owner_id: owner,
        name: "l",
        engine: EngineKind::Sandbox,
        webhook_url: None,
    };
    store.insert_session(new).await.unwrap();
    let text = MessageContent::Text { body: "listed".into(), mentions: vec![], reply_to: None };
    for (n, id) in ["l-1", "l-2", "l-3", "l-4", "l-5"].into_iter().enumerate() {
        let recipient = format!("+62812345700{n:02}");
        let message = NewMessage {
            id,
            owner_id: owner,
            session_id: session,
            pool: None,
            seq: 100 + n as i64,
            priority: 0,
            recipient: &recipient,
            content: &text,
            expires_at: None,
            // One with a key; the others share none (any number of messages may have none).
            idempotency_key: (id == "l-4").then_some("key-4"),
            request_hash: None,
        };
        assert!(matches!(store.insert_message(message).await.unwrap(), Inserted::New(_)), "{id}");
    }
    let repeat = NewMessage {
        id: "l-4-again",
        owner_id: owner,
        session_id: session,
        pool: None,
        seq: 200,
        priority: 0,
        recipient: "+6281234570003",
        content: &text,
        expires_at: None,
        idempotency_key: Some("key-4"),
        request_hash: None,
    };
    match store.insert_message(repeat).await.unwrap() {
        Inserted::Existing(first) => assert_eq!(first.id, "l-4"),
        Inserted::New(m) => panic!("a repeated idempotency key made a new message {}", m.id),
    }
    assert_eq!(store.transition_messages(&["l-1", "l-2"], MessageStatus::Delivered).await.unwrap().len(), 2);
    assert!(
        store
            .transition_message("l-3", MessageStatus::Canceled, &[MessageStatus::Queued], None)
            .await
            .unwrap()
    );
    let ids =
        |records: Vec<wagate_store::MessageRecord>| records.into_iter().map(|m| m.id).collect::<Vec<_>>();
    let all = store.messages(&MessageFilter { limit: 100, ..Default::default() }).await.unwrap();
    assert!(all.iter().filter(|m| m.status == MessageStatus::Queued).count() >= 2, "some still queued");
    for status in MessageStatus::ALL {
        for owner_id in [None, Some(owner.to_owned())] {
            for session_id in [None, Some(session.to_string())] {
                let expected: Vec<_> = all
                    .iter()
                    .filter(|m| m.status == status && owner_id.as_ref().is_none_or(|o| &m.owner_id == o))
                    .filter(|m| session_id.as_ref().is_none_or(|s| m.session_id.as_str() == s))
                    .map(|m| m.id.clone())
                    .collect();
                let filter = MessageFilter {
                    owner_id: owner_id.clone(),
                    session_id,
                    status: Some(status),
                    limit: 100,
                    ..Default::default()
                };
                assert_eq!(ids(store.messages(&filter).await.unwrap()), expected, "{status:?}, {filter:?}");
            }
        }
        let stranger = MessageFilter {
            owner_id: Some("someone-else".into()),
            status: Some(status),
            limit: 100,
            ..Default::default()
        };
        assert!(store.messages(&stranger).await.unwrap().is_empty(), "another tenant's {status:?}");
        let strangers_session = MessageFilter { session_id: Some(session.to_string()), ..stranger.clone() };
        assert!(store.messages(&strangers_session).await.unwrap().is_empty(), "through a session not theirs");
    }
    // Page by page, one at a time, the same messages in the same order (what waits is read
    // through another index than the rest).
    for status in [None, Some(MessageStatus::Queued)] {
        let mut paged = Vec::new();
        let mut before = None;
        loop {
            let filter = MessageFilter {
                owner_id: Some(owner.to_owned()),
                status,
                before,
                limit: 1,
                ..Default::default()
            };
            let Some(message) = store.messages(&filter).await.unwrap().pop() else { break };
            before = Some((message.created_at, message.id.clone()));
            paged.push(message.id);
        }
        let expected: Vec<String> =
            all.iter().filter(|m| status.is_none_or(|s| m.status == s)).map(|m| m.id.clone()).collect();
        assert_eq!(paged, expected, "{status:?}");
    }
}

/// Verifications and their messages in one transaction, conditional transitions, counters.
async fn otp_scenario(store: &Store, owner: &str, session: &SessionId) {
    let now = wagate_store::now_ms();
    let text = MessageContent::Text { body: "sealed".into(), mentions: vec![], reply_to: None };
    let message = |id| NewMessage {
        id,
        owner_id: owner,
        session_id: session,
        pool: None,
        seq: 1,
        priority: 1,
        recipient: "+6281234560001",
        content: &text,
        expires_at: Some(now + 300_000),
        idempotency_key: None,
        request_hash: None,
    };
    let first = verification("otp-1", owner, Some("m-1"), now);
    assert!(
        store.insert_otp(NewOtp { record: &first, message: Some(message("m-1")) }).await.unwrap().is_empty()
    );
    assert_eq!(store.message("m-1").await.unwrap().unwrap().priority, 1);
    let second = verification("otp-2", owner, Some("m-2"), now + 1);
    let replaced = store.insert_otp(NewOtp { record: &second, message: Some(message("m-2")) }).await.unwrap();
    assert_eq!(replaced, ["otp-1"], "one pending verification per phone");
    assert_eq!(store.otp("otp-1").await.unwrap().unwrap().status, OtpStatus::Canceled);
    assert_eq!(store.message("m-1").await.unwrap().unwrap().status, MessageStatus::Canceled);
    assert_eq!(store.pending_otp(owner, "+6281234560001").await.unwrap().unwrap().id, "otp-2");
    assert_eq!(store.otp_by_message("m-2").await.unwrap().unwrap().id, "otp-2");

    // Wrong codes: the last allowed one locks it; nothing counts after that.
    let after_one = store.record_otp_failure("otp-2", now).await.unwrap().unwrap();
    assert_eq!((after_one.attempts, after_one.status), (1, OtpStatus::Pending));
    let after_two = store.record_otp_failure("otp-2", now).await.unwrap().unwrap();
    assert_eq!((after_two.attempts, after_two.status), (2, OtpStatus::MaxAttempts));
    assert!(store.record_otp_failure("otp-2", now).await.unwrap().is_none());
    assert!(!store.approve_otp("otp-2", now).await.unwrap());

    // A new code (resend) within the cap and cooldown; approval happens once.
    let third = verification("otp-3", owner, Some("m-3"), now);
    store.insert_otp(NewOtp { record: &third, message: Some(message("m-3")) }).await.unwrap();
    let code = |max_sends, sent_before| NewCode {
        id: "otp-3",
        session_id: "one",
        code_mac: "mac-2",
        mode: OtpMode::Push,
        message: Some(message("m-4")),
        expires_at: now + 600_000,
        max_sends,
        sent_before,
    };
    assert!(store.replace_otp_code(code(5, now - 30_000)).await.unwrap().is_none(), "cooldown");
    let renewed = store.replace_otp_code(code(5, now + 1)).await.unwrap().unwrap();
    assert_eq!(
        (renewed.sends, renewed.code_mac.as_str(), renewed.message_id.as_deref()),
        (2, "mac-2", Some("m-4"))
    );
    assert_eq!(store.message("m-3").await.unwrap().unwrap().status, MessageStatus::Canceled);
    assert!(store.approve_otp("otp-3", now).await.unwrap());
    assert!(!store.approve_otp("otp-3", now).await.unwrap(), "approves at most once");

    // Per-phone failure counter (upsert on every database).
    assert_eq!(store.add_phone_failure(owner, "+6281234560001", now).await.unwrap(), 1);
    assert_eq!(store.add_phone_failure(owner, "+6281234560001", now).await.unwrap(), 2);
    assert_eq!(store.phone_failures(owner, "+6281234560001").await.unwrap().unwrap().failures, 2);
    let (record, failures) = store.otp_with_phone_failures("otp-3").await.unwrap().unwrap();
    assert_eq!(
        (record.id.as_str(), failures.map(|f| (f.failures, f.last_failure_at))),
        ("otp-3", Some((2, now)))
    );
    assert!(store.clear_phone_failures(owner, "+6281234560001").await.unwrap());
    assert!(store.phone_failures(owner, "+6281234560001").await.unwrap().is_none());
    let (_, failures) = store.otp_with_phone_failures("otp-3").await.unwrap().unwrap();
    assert!(failures.is_none(), "no failures, no lock");
    assert!(store.otp_with_phone_failures("otp-none").await.unwrap().is_none());

    // Expiry, cancel, listing, counts, retention.
    let mut old = verification("otp-4", owner, None, now - 10_000);
    old.phone = "+6281234560002".into();
    old.expires_at = now - 1;
    store.insert_otp(NewOtp { record: &old, message: None }).await.unwrap();
    let expired = store.expire_otps(now, 100).await.unwrap();
    assert_eq!(expired.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["otp-4"]);
    assert!(!store.set_otp_status("otp-4", OtpStatus::Canceled, OtpStatus::Pending, None).await.unwrap());
    let log = store
        .otps(&OtpFilter { owner_id: Some(owner.into()), limit: 10, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(log.len(), 4);
    let counts = store.otp_counts(Some(owner), 0).await.unwrap();
    assert_eq!(counts.iter().map(|(_, n)| n).sum::<i64>(), 4);
    assert_eq!(store.delete_otps_before(now + 10).await.unwrap(), 4);
    // Several verifications in one write, and several approvals in one.
    let mut fourth = verification("otp-b1", owner, None, now);
    fourth.phone = "+6281234560004".into();
    let mut fifth = verification("otp-b2", owner, None, now);
    fifth.phone = "+6281234560005".into();
    store.insert_otps(&[(fourth, None), (fifth, None)]).await.unwrap();
    let approved = store.approve_otps(&["otp-b1", "otp-3", "nothing", "otp-b2"], now).await.unwrap();
    assert_eq!(approved, [true, false, false, true], "one write, an answer for each");
    // Seven in one write (runs of 4, 2 and 1 rows), the last replacing a pending one.
    let mut pending = verification("otp-c-old", owner, None, now);
    pending.phone = "+6281234560199".into();
    store.insert_otp(NewOtp { record: &pending, message: None }).await.unwrap();
    let batch: Vec<_> = (0..7)
        .map(|n| {
            let mut record = verification(&format!("otp-c{n}"), owner, None, now);
            record.phone = if n == 6 { pending.phone.clone() } else { format!("+62812345601{n:02}") };
            (record, None)
        })
        .collect();
    let replaced = store.insert_otps(&batch).await.unwrap();
    assert_eq!(replaced[6], ["otp-c-old"]);
    assert!(replaced[..6].iter().all(Vec::is_empty));
    let ids: Vec<&str> = batch.iter().map(|(r, _)| r.id.as_str()).chain(["otp-c-old"]).collect();
    let approved = store.approve_otps(&ids, now).await.unwrap();
    assert_eq!(approved, [true, true, true, true, true, true, true, false], "the replaced one is canceled");

    // Templates and settings replace in place.
    store.put_otp_template(owner, "default", "en", "{{ code }} a").await.unwrap();
    store.put_otp_template(owner, "default", "en", "{{ code }} b").await.unwrap();
    let templates = store.otp_templates(owner).await.unwrap();
    assert_eq!((templates.len(), templates[0].body.as_str()), (1, "{{ code }} b"));
    assert!(store.delete_otp_template(owner, "default", "en").await.unwrap());
    // Receipts in one statement: only forward steps.
    let moved =
        store.transition_messages(&["m-2", "m-4", "missing"], MessageStatus::Delivered).await.unwrap();
    assert_eq!(moved.len(), 2, "{moved:?}");
    assert_eq!(store.transition_messages(&["m-2"], MessageStatus::Read).await.unwrap(), ["m-2"]);
    assert!(
        store.transition_messages(&["m-2"], MessageStatus::Delivered).await.unwrap().is_empty(),
        "never back"
    );
    let read = store.message("m-2").await.unwrap().unwrap();
    assert_eq!(read.status, MessageStatus::Read);
    assert!(read.delivered_at.is_some() && read.read_at.is_some());
    let delivered = store.message("m-4").await.unwrap().unwrap();
    assert!(delivered.sent_at.is_some(), "a receipt that beats the server's ack still means sent");
    // A failure and a retry: each one a status change with its reason in the history.
    let before = store.message("m-1").await.unwrap().unwrap().status;
    assert!(
        store
            .transition_message("m-1", MessageStatus::Failed, &[before], Some("no route"))
            .await
            .expect("a failure is one valid statement on every database")
    );
    let failed = store.message("m-1").await.unwrap().unwrap();
    assert_eq!((failed.status, failed.reason.as_deref()), (MessageStatus::Failed, Some("no route")));
    assert!(store.requeue_message("m-1", now, Some("retry")).await.unwrap());
    let history = store.message_history("m-1").await.unwrap();
    let steps: Vec<_> = history.iter().rev().take(2).map(|e| (e.status, e.reason.as_deref())).collect();
    assert_eq!(steps, [(MessageStatus::Queued, Some("retry")), (MessageStatus::Failed, Some("no route"))]);
    assert!(store.transition_message("m-1", before, &[MessageStatus::Queued], None).await.unwrap());

    // Overview counts.
    let counts = store.message_counts(Some(owner)).await.unwrap();
    assert_eq!(counts.iter().map(|(_, n)| n).sum::<i64>(), 4, "{counts:?}");
    assert!(counts.contains(&("read".to_owned(), 1)), "{counts:?}");
    let hours = store.messages_per_hour(None, 0).await.unwrap();
    assert_eq!(hours.iter().map(|(_, n)| n).sum::<i64>(), 4);
    assert!(hours.iter().all(|(hour, _)| hour % 3_600_000 == 0));
    assert_eq!(store.dead_webhook_deliveries(Some(owner)).await.unwrap(), 0);
    // Analytics: by status and kind, and a session's days.
    let since = store.message_counts_since(Some(owner), 0).await.unwrap();
    assert_eq!(since.iter().map(|(_, _, n)| n).sum::<i64>(), 4, "{since:?}");
    assert!(since.iter().all(|(_, kind, _)| kind == "text"), "{since:?}");
    assert!(store.message_counts_since(Some(owner), now + 60_000).await.unwrap().is_empty());
    let days = store.session_messages_per_day(session.as_str(), 0).await.unwrap();
    assert_eq!(days.iter().map(|(_, _, n)| n).sum::<i64>(), 4, "{days:?}");
    assert!(days.iter().all(|(day, _, _)| day % 86_400_000 == 0), "{days:?}");
    assert!(store.session_received_per_day(session.as_str(), 0).await.unwrap().is_empty());

    // The metrics' figures, and retention: finished records go, a batch at a time; a queued
    // message stays.
    let metered = SessionId::parse("metered").unwrap();
    let new = NewSession {
        id: &metered,
        owner_id: owner,
        name: "m",
        engine: EngineKind::Sandbox,
        webhook_url: None,
    };
    store.insert_session(new).await.unwrap();
    let waiting = NewMessage {
        id: "m-queued",
        session_id: &metered,
        priority: 0,
        expires_at: None,
        ..message("m-queued")
    };
    store.insert_message(waiting).await.unwrap();
    assert_eq!(store.outbox_depth().await.unwrap(), 1);
    assert!(store.session_counts().await.unwrap().iter().any(|(status, n)| status == "created" && *n == 1));
    assert_eq!(store.oldest_pending_webhook_delivery().await.unwrap(), None);
    store.insert_session_event(&metered, "tick", None).await.unwrap();
    let later = wagate_store::now_ms() + 1;
    assert_eq!(store.delete_old(Retained::Messages, later, 1).await.unwrap(), 1, "one batch of one");
    assert_eq!(store.delete_old(Retained::Messages, later, 100).await.unwrap(), 3);
    assert_eq!(store.delete_old(Retained::Messages, later, 100).await.unwrap(), 0);
    assert!(
        store.message("m-2").await.unwrap().is_none() && store.message("m-queued").await.unwrap().is_some()
    );
    assert!(store.message_history("m-2").await.unwrap().is_empty(), "its history goes with it");
    assert_eq!(store.delete_old(Retained::SessionEvents, later, 100).await.unwrap(), 1);
    assert_eq!(store.delete_old(Retained::ReceivedMessages, later, 100).await.unwrap(), 0);
    assert_eq!(store.delete_old(Retained::WebhookEvents, later, 100).await.unwrap(), 0);
    store.give_back_space().await.unwrap();

    store.put_otp_settings(owner, "{}").await.unwrap();

    // Fencing: a node claims a session's messages only while it holds the session's lease under
    // the epoch it knows.
    let fenced = SessionId::parse("fenced").unwrap();
    let new = NewSession {
        id: &fenced,
        owner_id: owner,
        name: "f",
        engine: EngineKind::Sandbox,
        webhook_url: None,
    };
    store.insert_session(new).await.unwrap();
    store
        .insert_message(NewMessage { id: "m-fenced", session_id: &fenced, ..message("m-fenced") })
        .await
        .unwrap();
    let now = wagate_store::now_ms();
    let held = store.take_lease("session:fenced", "node-a", now, now + 60_000).await.unwrap().unwrap();
    let fence = |holder: &str, epoch| Fence { lease: "session:fenced".into(), holder: holder.into(), epoch };
    let refused = store.claim_next_messages(&fenced, &fence("node-b", held.epoch), now, now + 1, 10).await;
    assert!(matches!(refused, Err(StoreError::Fenced { .. })), "not the holder: {refused:?}");
    let refused =
        store.claim_next_messages(&fenced, &fence("node-a", held.epoch + 1), now, now + 1, 10).await;
    assert!(matches!(refused, Err(StoreError::Fenced { .. })), "another epoch: {refused:?}");
    assert_eq!(store.message("m-fenced").await.unwrap().unwrap().status, MessageStatus::Queued, "untouched");
    let claimed = store.claim_next_messages(&fenced, &fence("node-a", held.epoch), now, now + 1, 10).await;
    assert!(matches!(claimed, Ok(Claim::Messages { ref batch, .. }) if batch.len() == 1), "{claimed:?}");
    store.release_messages(&["m-fenced"]).await.unwrap();
    store.release_lease("session:fenced", "node-a", now).await.unwrap();
    let refused = store.claim_next_messages(&fenced, &fence("node-a", held.epoch), now, now + 1, 10).await;
    assert!(matches!(refused, Err(StoreError::Fenced { .. })), "a released lease: {refused:?}");
    assert_eq!(store.message("m-fenced").await.unwrap().unwrap().status, MessageStatus::Queued);
    store.put_otp_settings(owner, "{\"brand\":\"x\"}").await.unwrap();
    assert_eq!(store.otp_settings(owner).await.unwrap().as_deref(), Some("{\"brand\":\"x\"}"));
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&Store::sqlite_url(dir.path())).await.unwrap();
    scenario(store).await;
    assert!(dir.path().join("wagate.db-wal").exists() || dir.path().join("wagate.db").exists());
}

#[tokio::test]
async fn postgres() {
    let database = TestDatabase::create(DatabaseKind::Postgres).await.unwrap();
    scenario(Store::connect(database.url()).await.unwrap()).await;
}

#[tokio::test]
async fn mysql() {
    let database = TestDatabase::create(DatabaseKind::Mysql).await.unwrap();
    scenario(Store::connect(database.url()).await.unwrap()).await;
}

/// Another process writing to the same database raises the sessions' version; a process that
/// sees it move and drops its lists routes with the change.
#[tokio::test]
async fn session_changes_by_another_process_reach_routing() {
    let dir = tempfile::tempdir().unwrap();
    let here = Store::connect(&Store::sqlite_url(dir.path())).await.unwrap();
    here.migrate().await.unwrap();
    let elsewhere = Store::connect(&Store::sqlite_url(dir.path())).await.unwrap();
    let owner =
        here.insert_user(NewUser { username: "owner", password_hash: "h", role: Role::User }).await.unwrap();
    let id = SessionId::parse("shop").unwrap();
    let new = NewSession {
        id: &id,
        owner_id: &owner.id,
        name: "Shop",
        engine: EngineKind::Sandbox,
        webhook_url: None,
    };
    here.insert_session(new).await.unwrap();
    assert_eq!(here.owner_sessions(&owner.id).await.unwrap()[0].status, SessionStatus::Created);
    let as_last_read = async || here.session_as_last_read(&id).await.unwrap().unwrap().status;
    assert_eq!(as_last_read().await, SessionStatus::Created);
    here.set_session_status(&id, SessionStatus::Connecting, None).await.unwrap();
    assert_eq!(as_last_read().await, SessionStatus::Connecting, "this process's own change, at once");
    here.set_session_status(&id, SessionStatus::Created, None).await.unwrap();
    assert_eq!(as_last_read().await, SessionStatus::Created);
    assert_eq!(here.owner_sessions(&owner.id).await.unwrap()[0].status, SessionStatus::Created);
    let version = |versions: Vec<(CacheTopic, i64)>| {
        versions.into_iter().find(|(topic, _)| *topic == CacheTopic::Sessions).map(|(_, v)| v)
    };
    let before = version(here.cache_versions().await.unwrap());

    elsewhere.set_session_status(&id, SessionStatus::Connected, None).await.unwrap();
    assert_ne!(version(here.cache_versions().await.unwrap()), before, "the change raised the version");
    assert_eq!(here.owner_sessions(&owner.id).await.unwrap()[0].status, SessionStatus::Created, "kept");
    assert_eq!(as_last_read().await, SessionStatus::Created, "kept");
    here.forget_session_lists();
    assert_eq!(here.owner_sessions(&owner.id).await.unwrap()[0].status, SessionStatus::Connected);
    assert_eq!(as_last_read().await, SessionStatus::Connected);
    let unknown = SessionId::parse("nowhere").unwrap();
    assert!(here.session_as_last_read(&unknown).await.unwrap().is_none());
}

/// A database migrated by a newer version is refused with a message that says so, not changed.
#[tokio::test]
async fn a_schema_from_a_newer_version_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&Store::sqlite_url(dir.path())).await.unwrap();
    store.migrate().await.unwrap();
    let url = Store::sqlite_url(dir.path());
    let mut db = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99999, 'from a newer wagate', TRUE, X'00', 0)",
    )
    .execute(&mut db)
    .await
    .unwrap();
    let refused = store.migrate().await.unwrap_err();
    assert!(matches!(refused, StoreError::NewerSchema { version: 99999 }), "{refused:?}");
    assert!(refused.to_string().contains("newer wagate"), "{refused}");
}

/// Leases: one holder at a time; renewed in the same epoch; taken over in a new epoch once
/// expired or released.
async fn leases(store: &Store) {
    let now = 1_000_000;
    let first = store.take_lease("jobs", "node-a", now, now + 100).await.unwrap().expect("free: taken");
    assert_eq!(store.take_lease("jobs", "node-b", now + 1, now + 101).await.unwrap(), None, "held by a");
    let renewed = store.take_lease("jobs", "node-a", now + 50, now + 150).await.unwrap().unwrap();
    assert_eq!((renewed.epoch, renewed.expires_at), (first.epoch, now + 150), "a renewal keeps the epoch");
    assert_eq!(store.lease_holder("jobs", now + 120).await.unwrap().as_deref(), Some("node-a"));
    assert_eq!(store.take_lease("jobs", "node-b", now + 149, now + 249).await.unwrap(), None);
    let taken =
        store.take_lease("jobs", "node-b", now + 150, now + 250).await.unwrap().expect("expired: taken");
    assert_eq!(taken.epoch, first.epoch + 1, "a new holder, a new epoch");
    assert_eq!(store.take_lease("jobs", "node-a", now + 160, now + 260).await.unwrap(), None, "a lost it");
    store.release_lease("jobs", "node-a", now + 170).await.unwrap(); // not the holder: nothing changes
    assert_eq!(store.lease_holder("jobs", now + 170).await.unwrap().as_deref(), Some("node-b"));
    store.release_lease("jobs", "node-b", now + 170).await.unwrap();
    assert_eq!(store.lease_holder("jobs", now + 170).await.unwrap(), None);
    let back = store.take_lease("jobs", "node-a", now + 171, now + 271).await.unwrap().expect("released");
    assert_eq!(back.epoch, taken.epoch + 1);

    // Nodes: a heartbeat keeps a node listed; a restart under the same id replaces it.
    let node = |id: &str, started_at: i64, version: &str| NodeRecord {
        id: id.into(),
        started_at,
        heartbeat_at: 0,
        version: version.into(),
        address: Some(format!("http://{id}:8080")),
    };
    store.node_heartbeat(&node("node-a", 10, "1.0.0"), now).await.unwrap();
    store.node_heartbeat(&node("node-b", 20, "1.0.0"), now).await.unwrap();
    store.node_heartbeat(&node("node-a", 10, "1.0.0"), now + 500).await.unwrap();
    let live: Vec<String> = store.live_nodes(now + 100).await.unwrap().into_iter().map(|n| n.id).collect();
    assert_eq!(live, ["node-a"]);
    store
        .node_heartbeat(&NodeRecord { address: None, ..node("node-a", 30, "1.1.0") }, now + 600)
        .await
        .unwrap();
    let nodes = store.live_nodes(0).await.unwrap();
    assert_eq!(nodes.len(), 2);
    let a = nodes.iter().find(|n| n.id == "node-a").unwrap();
    assert_eq!((a.started_at, a.version.as_str(), a.address.as_deref()), (30, "1.1.0", None));
    let b = nodes.iter().find(|n| n.id == "node-b").unwrap();
    assert_eq!(b.address.as_deref(), Some("http://node-b:8080"));
    store.remove_node("node-b").await.unwrap();
    assert_eq!(store.live_nodes(0).await.unwrap().len(), 1);

    // Leases by prefix: only held ones, only under the prefix.
    store.take_lease("session:s1", "node-a", now, now + 100).await.unwrap().unwrap();
    store.take_lease("session:s2", "node-b", now, now + 300).await.unwrap().unwrap();
    store.take_lease("sessions", "node-b", now, now + 300).await.unwrap().unwrap();
    let held = store.held_leases("session:", now + 150).await.unwrap();
    assert_eq!(held, [("session:s2".to_owned(), "node-b".to_owned())]);
    assert_eq!(store.held_leases("session:", now + 50).await.unwrap().len(), 2);
}

async fn rate_limits(store: &Store) {
    let now = 1_000_000;
    assert_eq!(store.rate_arrival("otp.phone:+62811").await.unwrap(), None);
    // Emission 100, window 300: the time moves by 100 per hit, never past now + 300.
    store.rate_record("otp.phone:+62811", now, 100, 300).await.unwrap();
    assert_eq!(store.rate_arrival("otp.phone:+62811").await.unwrap(), Some(now + 100));
    store.rate_record("otp.phone:+62811", now + 10, 100, 300).await.unwrap();
    assert_eq!(store.rate_arrival("otp.phone:+62811").await.unwrap(), Some(now + 200));
    for _ in 0..5 {
        store.rate_record("otp.phone:+62811", now + 20, 100, 300).await.unwrap();
    }
    assert_eq!(store.rate_arrival("otp.phone:+62811").await.unwrap(), Some(now + 320), "capped at a window");
    // An idle key starts from now, not from its old time.
    store.rate_record("otp.phone:+62822", now, 100, 300).await.unwrap();
    store.rate_record("otp.phone:+62822", now + 5_000, 100, 300).await.unwrap();
    assert_eq!(store.rate_arrival("otp.phone:+62822").await.unwrap(), Some(now + 5_100));
    store.rate_clear("otp.phone:+62822").await.unwrap();
    assert_eq!(store.rate_arrival("otp.phone:+62822").await.unwrap(), None);
    store.rate_record("login.user:admin", now, 100, 300).await.unwrap();
    assert_eq!(store.prune_rate_limits(now + 100).await.unwrap(), 1, "back at full allowance");
    assert_eq!(store.rate_arrival("otp.phone:+62811").await.unwrap(), Some(now + 320));
    assert_eq!(store.rate_arrival("login.user:admin").await.unwrap(), None);
}
