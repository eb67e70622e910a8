//! Several accounts on one mock at once, each talking to the same contact.

mod common;

use std::time::Duration;

use common::{account, paired_client};
use wamock::{MockConfig, WaMock};
use whatsapp_rust::prelude::*;

const ACCOUNTS: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_accounts_pair_and_send_without_cross_talk() {
    let mock = WaMock::start(MockConfig::default()).await.expect("mock");
    let dir = tempfile::tempdir().expect("tempdir");
    let bob = mock.add_contact("15550009999");

    let clients = futures_util::future::join_all((0..ACCOUNTS).map(|n| {
        let mock = mock.clone();
        let db = dir.path().join(format!("account{n}.db"));
        async move {
            let account = account(&format!("1555000{n:04}"));
            let client = paired_client(&mock, &db, &account).await;
            (account, client)
        }
    }))
    .await;
    assert_eq!(mock.online_accounts().len(), ACCOUNTS);
    assert_eq!(mock.connection_count(), ACCOUNTS);

    for (account, client) in &clients {
        client
            .client()
            .send_text(Jid::pn(bob.phone.as_str()), format!("from {}", account.phone))
            .await
            .expect("send");
    }
    let mut senders = Vec::new();
    for _ in 0..ACCOUNTS {
        let received = mock.next_message(Duration::from_secs(10)).await.expect("every message arrives");
        assert_eq!(received.text, Some(format!("from {}", received.from)));
        senders.push(received.from);
    }
    senders.sort();
    let mut expected: Vec<String> = clients.iter().map(|(a, _)| a.phone.clone()).collect();
    expected.sort();
    assert_eq!(senders, expected);

    for (_, client) in clients {
        client.stop().await;
    }
}
