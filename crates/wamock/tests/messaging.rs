//! Messages both ways between a linked device and fake contacts, number
//! checks, groups, and the 463 nack for restricted numbers.

mod common;

use std::time::Duration;

use common::{TestClient, account, paired_client};
use wamock::{MockConfig, WaMock};
use whatsapp_rust::prelude::*;
use whatsapp_rust::types::presence::ReceiptType;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn texts_are_acked_delivered_read_and_answered() {
    let mock = WaMock::start(MockConfig::default()).await.expect("mock");
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = account("15550001111");
    let bob = mock.add_contact("15550003333");
    let mut client = paired_client(&mock, &dir.path().join("alice.db"), &alice).await;

    // Outgoing: the contact reads the plaintext; ack, delivered, read.
    let sent = client.client().send_text(Jid::pn(bob.phone.as_str()), "hello bob").await.expect("send");
    let received = mock.next_message(Duration::from_secs(10)).await.expect("the contact got the message");
    assert_eq!(received.id, sent.message_id);
    assert_eq!(received.from, alice.phone);
    assert_eq!(received.to, bob.phone);
    assert_eq!(received.text.as_deref(), Some("hello bob"));
    // The client dispatches events on separate tasks: the ack and the receipts may come in any
    // order, so they are collected together.
    enum Seen {
        Ack,
        Receipt(ReceiptType),
    }
    let (mut acked, mut receipts) = (false, Vec::new());
    while !acked || receipts.len() < 2 {
        let id = sent.message_id.clone();
        let seen = client
            .wait_for("the ack and two receipts", |event| match event {
                Event::ServerAck(ack) if ack.id == id => {
                    assert_eq!(ack.error, None);
                    assert_eq!(ack.class.as_deref(), Some("message"));
                    Some(Seen::Ack)
                }
                Event::Receipt(receipt) if receipt.message_ids.contains(&id) => {
                    Some(Seen::Receipt(receipt.r#type.clone()))
                }
                _ => None,
            })
            .await;
        match seen {
            Seen::Ack => acked = true,
            Seen::Receipt(kind) => receipts.push(kind),
        }
    }
    assert!(receipts.contains(&ReceiptType::Delivered), "{receipts:?}");
    assert!(receipts.contains(&ReceiptType::Read), "{receipts:?}");

    // A second message rides the established session.
    let again =
        client.client().send_text(Jid::pn(bob.phone.as_str()), "still there?").await.expect("send again");
    let received = mock.next_message(Duration::from_secs(10)).await.expect("second");
    assert_eq!(received.id, again.message_id);
    assert_eq!(received.text.as_deref(), Some("still there?"));

    // Inbound: the contact answers, twice.
    for text in ["hi alice", "how are you?"] {
        let id = mock.send_text(&bob.phone, &alice.phone, text).await.expect("contact sends");
        let (got_id, got_text, sender) = client
            .wait_for("an inbound message", |event| match event {
                Event::Messages(batch) => batch.messages.first().map(|inbound| {
                    (
                        inbound.info.id.clone(),
                        inbound.message.conversation.clone(),
                        inbound.info.source.sender.clone(),
                    )
                }),
                _ => None,
            })
            .await;
        assert_eq!(got_id, id);
        assert_eq!(got_text.as_deref(), Some(text));
        assert_eq!(sender.user, bob.phone);
    }
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restricted_numbers_nack_463_and_lookups_answer() {
    let mock = WaMock::start(MockConfig::default()).await.expect("mock");
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = account("15550001111");
    let carol = mock.add_contact("15550004444");
    let shop = mock.add_business_contact("15550005555");
    mock.restrict(&carol.phone);
    let mut client = paired_client(&mock, &dir.path().join("alice.db"), &alice).await;

    let sent = client
        .client()
        .send_text(Jid::pn(carol.phone.as_str()), "are you there?")
        .await
        .expect("the send itself succeeds");
    let id = sent.message_id.clone();
    let error = client
        .wait_for("the nack", |event| match event {
            Event::ServerAck(ack) if ack.id == id => Some(ack.error.clone()),
            _ => None,
        })
        .await;
    assert_eq!(error.as_deref(), Some("463"));
    assert!(mock.next_message(Duration::from_millis(300)).await.is_none());

    let checks = client
        .client()
        .contacts()
        .is_on_whatsapp(&[
            Jid::pn(carol.phone.as_str()),
            Jid::pn(shop.phone.as_str()),
            Jid::pn("15559999999"),
        ])
        .await
        .expect("number check");
    let find = |phone: &str| {
        checks
            .iter()
            .find(|check| check.jid.user == phone)
            .unwrap_or_else(|| panic!("no result for {phone}: {checks:?}"))
    };
    assert!(find(&carol.phone).is_registered);
    assert!(!find(&carol.phone).is_business);
    assert_eq!(find(&carol.phone).lid.as_ref().map(|lid| lid.user.to_string()), Some(carol.lid.clone()));
    assert!(find(&shop.phone).is_business);
    assert!(!find("15559999999").is_registered);

    let groups = client.client().groups().get_participating().await.expect("groups");
    assert!(groups.is_empty());
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_to_an_offline_device_arrive_at_its_next_login() {
    let mock = WaMock::start(MockConfig::default()).await.expect("mock");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("alice.db");
    let alice = account("15550001111");
    let bob = mock.add_contact("15550003333");
    let client = paired_client(&mock, &db, &alice).await;
    client.stop().await;

    let id = mock.send_text(&bob.phone, &alice.phone, "while you were away").await.expect("queued");
    let mut client = TestClient::start(&mock, &db).await;
    let got = client
        .wait_for("the queued message", |event| match event {
            Event::Messages(batch) => batch.messages.first().map(|m| m.info.id.clone()),
            _ => None,
        })
        .await;
    assert_eq!(got, id);
    client.stop().await;
}
