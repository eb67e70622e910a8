use std::time::Duration;

use wagate_core::{Phone, SessionId};

use super::*;
use crate::{
    Account, Chat, EngineEvent, EventReceiver, MessageContent, OutgoingMessage, ReceiptKind, SendFailure,
};

fn fast() -> SandboxConfig {
    SandboxConfig {
        qr_first_timeout: Duration::from_millis(150),
        qr_timeout: Duration::from_millis(50),
        qr_codes: 3,
        pair_code_timeout: Duration::from_secs(5),
        delivery_delay: Duration::from_millis(10),
        read_delay: Duration::from_millis(10),
        slow_delivery: Duration::from_millis(300),
        state_dir: None,
        inbox_capacity: 10_000,
    }
}

/// A text to `to` whose body is its id.
fn text_to(id: &str, to: &Phone) -> OutgoingMessage {
    OutgoingMessage {
        id: id.into(),
        to: Chat::Phone(to.clone()),
        content: MessageContent::Text { body: id.into(), mentions: vec![], reply_to: None },
        media: None,
    }
}

fn phone(raw: &str) -> Phone {
    Phone::parse(raw, None).unwrap()
}

struct Opened {
    connection: Arc<dyn Connection>,
    events: EventReceiver,
    spec: SessionSpec,
}

/// One state per session directory, as the gateway gives one per session.
fn state_of(store_dir: &std::path::Path) -> Arc<dyn crate::state::SessionState> {
    static STATES: std::sync::LazyLock<
        std::sync::Mutex<std::collections::HashMap<std::path::PathBuf, Arc<crate::state::MemoryState>>>,
    > = std::sync::LazyLock::new(Default::default);
    let mut states = STATES.lock().unwrap();
    states.entry(store_dir.to_owned()).or_default().clone()
}

async fn open(engine: &SandboxEngine, dir: &tempfile::TempDir, id: &str) -> Opened {
    let store_dir = dir.path().join(id);
    let spec = SessionSpec { id: SessionId::parse(id).unwrap(), state: state_of(&store_dir), store_dir };
    let (sink, events) = EventSink::channel();
    let connection = engine.open(spec.clone(), sink).await.unwrap();
    Opened { connection, events, spec }
}

async fn next(events: &mut EventReceiver) -> EngineEvent {
    tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("an event in time")
        .expect("open")
}

async fn link(engine: &SandboxEngine, opened: &mut Opened, number: &str) -> Account {
    assert!(matches!(next(&mut opened.events).await, EngineEvent::Qr { .. }));
    let account =
        engine.network().scan(&opened.spec.id, phone(number), Some("Shop".into()), None).await.unwrap();
    let mut event = next(&mut opened.events).await;
    while matches!(event, EngineEvent::Qr { .. }) {
        event = next(&mut opened.events).await; // rotated before the scan
    }
    assert!(matches!(event, EngineEvent::Paired { .. }));
    assert!(matches!(next(&mut opened.events).await, EngineEvent::Connected { .. }));
    account
}

#[tokio::test]
async fn qr_codes_rotate_then_run_out() {
    let dir = tempfile::tempdir().unwrap();
    let engine = SandboxEngine::new(fast());
    let mut s = open(&engine, &dir, "rotate").await;
    let mut codes = Vec::new();
    for expected_validity in [150, 50, 50] {
        match next(&mut s.events).await {
            EngineEvent::Qr { code, valid_for } => {
                assert_eq!(valid_for, Duration::from_millis(expected_validity));
                assert!(code.starts_with("2@") && code.split(',').count() == 4, "{code}");
                codes.push(code);
            }
            other => panic!("expected a QR code, got {other:?}"),
        }
    }
    codes.dedup();
    assert_eq!(codes.len(), 3, "every QR code is new");
    assert_eq!(next(&mut s.events).await, EngineEvent::QrExhausted);
    let err = engine.network().scan(&s.spec.id, phone("+6281234567890"), None, None).await.unwrap_err();
    assert_eq!(err, SandboxError::NotOpen, "a stopped session cannot be scanned");
}

#[tokio::test]
async fn scanning_links_and_the_link_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let engine = SandboxEngine::new(fast());
    let mut s = open(&engine, &dir, "linked").await;
    let account = link(&engine, &mut s, "+6281234567890").await;
    assert_eq!(account.phone.e164(), "+6281234567890");
    assert!(account.lid.as_deref().is_some_and(|lid| lid.ends_with("@lid")));
    s.connection.close().await;

    let mut again = open(&engine, &dir, "linked").await;
    match next(&mut again.events).await {
        EngineEvent::Connected { account: restored } => assert_eq!(restored, account),
        other => panic!("expected a login without QR, got {other:?}"),
    }
}

#[tokio::test]
async fn a_stale_qr_code_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = SandboxEngine::new(fast());
    let mut s = open(&engine, &dir, "stale").await;
    let EngineEvent::Qr { code: first, .. } = next(&mut s.events).await else { panic!() };
    let EngineEvent::Qr { .. } = next(&mut s.events).await else { panic!() };
    let err =
        engine.network().scan(&s.spec.id, phone("+6281234567890"), None, Some(first)).await.unwrap_err();
    assert_eq!(err, SandboxError::QrMismatch);
}

#[tokio::test]
async fn pairing_code_flow() {
    let dir = tempfile::tempdir().unwrap();
    let engine = SandboxEngine::new(fast());
    let mut s = open(&engine, &dir, "paircode").await;
    assert!(matches!(next(&mut s.events).await, EngineEvent::Qr { .. }));
    let code = s.connection.pair_with_code(&phone("+6281234567890")).await.unwrap().code;
    assert_eq!(code.len(), 8);
    assert!(code.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
    assert!(matches!(next(&mut s.events).await, EngineEvent::PairCode { .. }));

    let network = engine.network();
    assert_eq!(
        network.confirm_pair_code(&s.spec.id, "WRONG123").await.unwrap_err(),
        SandboxError::WrongPairCode
    );
    let typed = format!("{}-{}", &code[..4].to_lowercase(), &code[4..]);
    let account = network.confirm_pair_code(&s.spec.id, &typed).await.unwrap();
    assert_eq!(account.phone.e164(), "+6281234567890");
    assert!(matches!(next(&mut s.events).await, EngineEvent::Paired { .. }));
    assert!(matches!(next(&mut s.events).await, EngineEvent::Connected { .. }));
    assert_eq!(s.connection.pair_with_code(&phone("+6281234567890")).await, Err(EngineError::AlreadyLinked));
}

#[tokio::test]
async fn sends_reach_the_inbox_with_receipts() {
    let dir = tempfile::tempdir().unwrap();
    let engine = SandboxEngine::new(fast());
    let mut s = open(&engine, &dir, "sender").await;
    link(&engine, &mut s, "+6281234567890").await;
    let to = phone("+6281111111111");
    let message = OutgoingMessage {
        id: "MSG1".into(),
        to: Chat::Phone(to.clone()),
        content: MessageContent::Text { body: "hello".into(), mentions: vec![], reply_to: None },
        media: None,
    };
    assert_eq!(s.connection.send(message).await.unwrap().await, Ok(Ok(())));
    assert_eq!(
        next(&mut s.events).await,
        EngineEvent::Receipt { ids: vec!["MSG1".into()], kind: ReceiptKind::Delivered }
    );
    assert_eq!(
        next(&mut s.events).await,
        EngineEvent::Receipt { ids: vec!["MSG1".into()], kind: ReceiptKind::Read }
    );
    let inbox = engine.network().inbox(&to).await.unwrap();
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].from, "+6281234567890");
    assert_eq!(
        inbox[0].content,
        MessageContent::Text { body: "hello".into(), mentions: vec![], reply_to: None }
    );
}

#[tokio::test]
async fn magic_numbers_fail_like_the_network() {
    let dir = tempfile::tempdir().unwrap();
    let engine = SandboxEngine::new(fast());
    let mut s = open(&engine, &dir, "magic").await;
    link(&engine, &mut s, "+6281234567890").await;
    let cases = [
        ("+6281234560000", SendFailure::NotOnWhatsApp),
        ("+6281234560463", SendFailure::ReachOutRestricted),
        ("+6281234560500", SendFailure::Transient { detail: "sandbox: simulated send failure".into() }),
    ];
    for (number, expected) in cases {
        let message = OutgoingMessage {
            id: number.into(),
            to: Chat::Phone(phone(number)),
            content: MessageContent::Text { body: "x".into(), mentions: vec![], reply_to: None },
            media: None,
        };
        assert_eq!(s.connection.send(message).await.unwrap().await, Ok(Err(expected)));
        assert!(engine.network().inbox(&phone(number)).await.unwrap().is_empty());
    }
    let checks =
        s.connection.check_numbers(&[phone("+6281234560000"), phone("+6281234567777")]).await.unwrap();
    assert!(!checks[0].on_whatsapp && checks[0].jid.is_none());
    assert!(checks[1].on_whatsapp);

    let slow = phone("+6281234560999");
    let message = OutgoingMessage {
        id: "SLOW".into(),
        to: Chat::Phone(slow),
        content: MessageContent::Text { body: "x".into(), mentions: vec![], reply_to: None },
        media: None,
    };
    let started = tokio::time::Instant::now();
    assert_eq!(s.connection.send(message).await.unwrap().await, Ok(Ok(())));
    assert!(matches!(next(&mut s.events).await, EngineEvent::Receipt { kind: ReceiptKind::Delivered, .. }));
    assert!(started.elapsed() >= Duration::from_millis(300), "slow numbers deliver late");
}

#[tokio::test]
async fn inbound_messages_and_session_to_session_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let engine = SandboxEngine::new(fast());
    let mut a = open(&engine, &dir, "alice").await;
    let mut b = open(&engine, &dir, "bob").await;
    link(&engine, &mut a, "+6281200000001").await;
    link(&engine, &mut b, "+6281200000002").await;

    // An injected message is answered once the receiver has handled it (asked for the next
    // event), and as not stored when the receiver rejects it.
    let network = engine.network().clone();
    let id = a.spec.id.clone();
    let inject = move |text: &str| {
        let (network, id, text) = (network.clone(), id.clone(), text.to_owned());
        tokio::spawn(
            async move { network.inject(&id, phone("+6281299999999"), text, Some("Cust".into())).await },
        )
    };
    let stored = inject("hi");
    let received = match next(&mut a.events).await {
        EngineEvent::Inbound(message) => message,
        other => panic!("expected inbound, got {other:?}"),
    };
    assert!(a.events.try_recv().is_none());
    assert_eq!(stored.await.unwrap().unwrap(), received);
    let lost = inject("lost");
    assert!(matches!(next(&mut a.events).await, EngineEvent::Inbound(_)));
    a.events.reject();
    assert!(matches!(lost.await.unwrap(), Err(SandboxError::NotStored)));

    let message = OutgoingMessage {
        id: "A2B".into(),
        to: Chat::Phone(phone("+6281200000002")),
        content: MessageContent::Text { body: "hello bob".into(), mentions: vec![], reply_to: None },
        media: None,
    };
    a.connection.send(message).await.unwrap();
    match next(&mut b.events).await {
        EngineEvent::Inbound(message) => {
            assert_eq!(message.id, "A2B");
            assert_eq!(message.from.e164(), "+6281200000001");
        }
        other => panic!("expected inbound at bob, got {other:?}"),
    }
}

#[tokio::test]
async fn logout_forgets_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let engine = SandboxEngine::new(fast());
    let mut s = open(&engine, &dir, "leaving").await;
    link(&engine, &mut s, "+6281234567890").await;
    s.connection.logout().await.unwrap();
    assert!(matches!(next(&mut s.events).await, EngineEvent::LoggedOut { .. }));
    let mut again = open(&engine, &dir, "leaving").await;
    assert!(matches!(next(&mut again.events).await, EngineEvent::Qr { .. }), "a new QR code after logout");
    again.connection.close().await;
    engine.forget(&again.spec).await.unwrap();
    assert!(!again.spec.store_dir.exists());
}

#[tokio::test]
async fn sending_needs_a_connection() {
    let dir = tempfile::tempdir().unwrap();
    let engine = SandboxEngine::new(fast());
    let s = open(&engine, &dir, "offline").await;
    let message = OutgoingMessage {
        id: "X".into(),
        to: Chat::Phone(phone("+6281234567890")),
        content: MessageContent::Text { body: "x".into(), mentions: vec![], reply_to: None },
        media: None,
    };
    assert_eq!(s.connection.send(message).await.err(), Some(EngineError::NotConnected));
    s.connection.close().await;
    let message = OutgoingMessage {
        id: "Y".into(),
        to: Chat::Phone(phone("+6281234567890")),
        content: MessageContent::Text { body: "x".into(), mentions: vec![], reply_to: None },
        media: None,
    };
    assert_eq!(s.connection.send(message).await.err(), Some(EngineError::Closed));
}

#[tokio::test]
async fn the_network_remembers_deliveries_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let config = SandboxConfig { state_dir: Some(dir.path().join("net")), ..fast() };
    let to = phone("+6281234512345");
    let text = |id: &str| text_to(id, &to);
    {
        let engine = SandboxEngine::new(config.clone());
        let mut s = open(&engine, &dir, "journal").await;
        link(&engine, &mut s, "+6281234500001").await;
        assert_eq!(s.connection.send(text("ONE")).await.unwrap().await, Ok(Ok(())));
        s.connection.close().await;
    }
    let engine = SandboxEngine::new(config);
    assert_eq!(engine.network().inbox(&to).await.unwrap().len(), 1, "the inbox survived");
    let mut s = open(&engine, &dir, "journal").await;
    assert!(matches!(next(&mut s.events).await, EngineEvent::Connected { .. }));
    assert_eq!(s.connection.send(text("ONE")).await.unwrap().await, Ok(Ok(())), "a resend is acknowledged…");
    assert_eq!(s.connection.send(text("TWO")).await.unwrap().await, Ok(Ok(())));
    let ids: Vec<String> = engine.network().inbox(&to).await.unwrap().into_iter().map(|m| m.id).collect();
    assert_eq!(ids, ["ONE", "TWO"], "…but not delivered twice");
}

#[tokio::test]
async fn an_inbox_reader_is_woken_by_deliveries_to_its_number_only() {
    let dir = tempfile::tempdir().unwrap();
    let engine = SandboxEngine::new(fast());
    let mut s = open(&engine, &dir, "waking").await;
    link(&engine, &mut s, "+6281234500003").await;
    let (watched, other) = (phone("+6281234513001"), phone("+6281234513002"));
    let deliveries = engine.network().deliveries_to(&watched);
    assert_eq!(s.connection.send(text_to("ELSEWHERE", &other)).await.unwrap().await, Ok(Ok(())));
    assert!(!deliveries.has_changed().unwrap(), "a delivery to another number does not wake it");
    assert_eq!(s.connection.send(text_to("HERE", &watched)).await.unwrap().await, Ok(Ok(())));
    assert!(deliveries.has_changed().unwrap(), "a delivery to its number does");
    s.connection.close().await;
}

#[tokio::test]
async fn the_network_remembers_only_the_latest_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let config = SandboxConfig { state_dir: Some(dir.path().join("net")), inbox_capacity: 3, ..fast() };
    let text = |id: &str, to: &str| text_to(id, &phone(to));
    {
        let engine = SandboxEngine::new(config.clone());
        let mut s = open(&engine, &dir, "bounded").await;
        link(&engine, &mut s, "+6281234500002").await;
        for (id, to) in [
            ("A", "+6281234512001"),
            ("B", "+6281234512002"),
            ("C", "+6281234512001"),
            ("D", "+6281234512003"),
        ] {
            assert_eq!(s.connection.send(text(id, to)).await.unwrap().await, Ok(Ok(())));
        }
        let network = engine.network();
        let ids = async |to: &str| {
            network.inbox(&phone(to)).await.unwrap().into_iter().map(|m| m.id).collect::<Vec<_>>()
        };
        assert_eq!(ids("+6281234512001").await, ["C"], "the oldest delivery (A) is forgotten");
        assert_eq!(
            (ids("+6281234512002").await, ids("+6281234512003").await),
            (vec!["B".to_owned()], vec!["D".to_owned()])
        );
        s.connection.close().await;
    }
    let journal = std::fs::read_to_string(dir.path().join("net/sandbox-deliveries.jsonl")).unwrap();
    assert_eq!(journal.lines().count(), 4, "appended while running");
    let engine = SandboxEngine::new(config);
    assert_eq!(engine.network().inbox(&phone("+6281234512001")).await.unwrap().len(), 1);
    let journal = std::fs::read_to_string(dir.path().join("net/sandbox-deliveries.jsonl")).unwrap();
    assert_eq!(journal.lines().count(), 3, "compacted to what is kept");
}

#[tokio::test]
async fn the_journal_stays_small_while_the_network_runs() {
    let dir = tempfile::tempdir().unwrap();
    let config = SandboxConfig { state_dir: Some(dir.path().join("net")), inbox_capacity: 3, ..fast() };
    let journal_lines =
        || std::fs::read_to_string(dir.path().join("net/sandbox-deliveries.jsonl")).unwrap().lines().count();
    {
        let engine = SandboxEngine::new(config.clone());
        let mut s = open(&engine, &dir, "long").await;
        link(&engine, &mut s, "+6281234500004").await;
        let mut most = 0;
        for n in 0..50 {
            let message = text_to(&format!("M{n}"), &phone(&format!("+62812345140{:02}", n % 7)));
            assert_eq!(s.connection.send(message).await.unwrap().await, Ok(Ok(())));
            most = most.max(journal_lines());
        }
        assert!(most <= 6, "at most twice the kept deliveries on disk, saw {most} lines");
        s.connection.close().await;
    }
    // What a restart reads back is what the network kept: the three newest deliveries.
    let engine = SandboxEngine::new(config);
    let network = engine.network();
    let mut kept = std::collections::BTreeSet::new();
    for n in 0..7 {
        kept.extend(
            network.inbox(&phone(&format!("+62812345140{n:02}"))).await.unwrap().into_iter().map(|m| m.id),
        );
    }
    let kept: Vec<String> = kept.into_iter().collect();
    assert_eq!(kept, ["M47", "M48", "M49"]);
}

#[tokio::test]
async fn a_device_kept_in_a_file_by_an_earlier_version_moves_into_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let engine = SandboxEngine::new(fast());
    let store_dir = dir.path().join("older");
    std::fs::create_dir_all(&store_dir).unwrap();
    let file = store_dir.join("sandbox-device.json");
    std::fs::write(&file, r#"{"phone":"+6281234500077","lid":"77@lid","push_name":"Old"}"#).unwrap();
    let mut s = open(&engine, &dir, "older").await;
    match next(&mut s.events).await {
        EngineEvent::Connected { account } => {
            assert_eq!((account.phone.e164(), account.push_name.as_deref()), ("+6281234500077", Some("Old")))
        }
        other => panic!("expected a login without a QR code, got {other:?}"),
    }
    assert!(!file.exists(), "the file is gone once imported");
    assert!(s.spec.state.exists().await.unwrap(), "the account is in the session's state");
    s.connection.close().await;
    let mut again = open(&engine, &dir, "older").await;
    assert!(matches!(next(&mut again.events).await, EngineEvent::Connected { .. }), "from the state alone");
}
