//! Crash safety: `kill -9` in the middle of a burst loses no accepted message and sends none
//! twice, and every session keeps its order.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Server, call, link_sandbox_session, login};
use reqwest::Method;
use serde_json::{Value, json};

const PASSWORD: &str = "crash-test-password";
const SESSIONS: usize = 4;
const PER_SESSION: usize = 500;

fn recipient(session: usize) -> String {
    format!("+62812345077{session:02}")
}

async fn link_sessions(client: &reqwest::Client, base: &str, token: &str) {
    for n in 0..SESSIONS {
        link_sandbox_session(client, base, token, &format!("s{n}"), &format!("+62812000007{n:02}")).await;
    }
}

/// Posts messages for one session in order; returns the ids that got a 202.
async fn submit(
    base: String,
    token: String,
    session: usize,
    accepted_total: Arc<AtomicUsize>,
) -> Vec<String> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut accepted = Vec::new();
    for n in 0..PER_SESSION {
        let body = json!({ "to": recipient(session), "text": format!("s{session} #{n}") });
        let response = client
            .post(format!("{base}/api/v1/sessions/s{session}/messages"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await;
        match response {
            Ok(r) if r.status().as_u16() == 202 => {
                let body: Value = r.json().await.unwrap_or_default();
                if let Some(id) = body["id"].as_str() {
                    accepted.push(id.to_owned());
                    accepted_total.fetch_add(1, Ordering::SeqCst);
                } else {
                    break; // the answer was cut off by the crash: not counted as accepted
                }
            }
            _ => break,
        }
    }
    accepted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_minus_nine_mid_burst_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("WAGATE_ADMIN_PASSWORD", PASSWORD)];
    let server = Server::start(dir.path(), &env).await;
    let client = reqwest::Client::new();
    let token = login(&client, &server.base, "admin", PASSWORD).await;
    link_sessions(&client, &server.base, &token).await;

    let accepted_total = Arc::new(AtomicUsize::new(0));
    let submitters: Vec<_> = (0..SESSIONS)
        .map(|n| tokio::spawn(submit(server.base.clone(), token.clone(), n, accepted_total.clone())))
        .collect();
    while accepted_total.load(Ordering::SeqCst) < SESSIONS * PER_SESSION / 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill().await;
    let mut accepted: Vec<Vec<String>> = Vec::new();
    for submitter in submitters {
        accepted.push(submitter.await.unwrap());
    }
    let total: usize = accepted.iter().map(Vec::len).sum();
    assert!(
        (SESSIONS * PER_SESSION / 2..SESSIONS * PER_SESSION).contains(&total),
        "killed mid-stream ({total} accepted)"
    );

    // Restart on the same data: everything accepted goes out.
    let server = Server::start(dir.path(), &env).await;
    let base = server.base.clone();
    let mut drained = false;
    for _ in 0..1500 {
        let (_, queued) = call(
            &client,
            Method::GET,
            format!("{base}/api/v1/messages?status=queued&limit=1"),
            &token,
            Value::Null,
        )
        .await;
        let (_, sending) = call(
            &client,
            Method::GET,
            format!("{base}/api/v1/messages?status=sending&limit=1"),
            &token,
            Value::Null,
        )
        .await;
        if queued["messages"].as_array().is_some_and(Vec::is_empty)
            && sending["messages"].as_array().is_some_and(Vec::is_empty)
        {
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    assert!(drained, "the outbox drains after the restart");

    for (session, ids) in accepted.iter().enumerate() {
        let (status, inbox) = call(
            &client,
            Method::GET,
            format!("{base}/api/v1/sandbox/inbox/{}", recipient(session)),
            &token,
            Value::Null,
        )
        .await;
        assert_eq!(status, 200);
        let delivered: Vec<String> = inbox["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect();
        let unique: HashSet<&String> = delivered.iter().collect();
        assert_eq!(unique.len(), delivered.len(), "s{session}: no message id delivered twice");
        // Every accepted message arrived, in the order it was accepted. (Messages whose 202 the
        // crash cut off may arrive too; they were stored before the answer.)
        let positions: Vec<usize> = ids
            .iter()
            .map(|id| {
                delivered
                    .iter()
                    .position(|d| d == id)
                    .unwrap_or_else(|| panic!("s{session}: accepted {id} was lost"))
            })
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "s{session}: per-session order holds");
        assert!(delivered.len() <= ids.len() + 2, "s{session}: at most the cut-off requests are extra");
    }
    for id in accepted.iter().flatten().step_by(25) {
        let (_, message) =
            call(&client, Method::GET, format!("{base}/api/v1/messages/{id}"), &token, Value::Null).await;
        assert!(["sent", "delivered", "read"].contains(&message["status"].as_str().unwrap()), "{message}");
    }
    server.terminate().await;
}
