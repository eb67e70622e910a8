//! Number checks (cached), groups and group messages, phone formatting.

mod common;

use std::time::Duration;

use common::TestApp;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn number_checks_are_cached() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    app.create_session(&admin, "offline").await;
    let (status, problem) = app
        .post("/api/v1/sessions/offline/numbers/check", &admin, json!({ "number": "+6281234567890" }))
        .await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::CONFLICT, Some("session_not_connected")));

    app.linked(&admin, "checker", "+6281200000021").await;
    let body = json!({ "numbers": ["+6281234560000", "6281234567777"] });
    let (status, first) = app.post("/api/v1/sessions/checker/numbers/check", &admin, body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let results = first["results"].as_array().unwrap();
    assert_eq!(
        (results[0]["on_whatsapp"].as_bool(), results[1]["on_whatsapp"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(results[1]["jid"], "6281234567777@s.whatsapp.net");
    assert_eq!(results[1]["input"], "6281234567777");
    assert!(results.iter().all(|r| r["cached"] == false));
    let (_, again) = app.post("/api/v1/sessions/checker/numbers/check", &admin, body).await;
    assert!(again["results"].as_array().unwrap().iter().all(|r| r["cached"] == true));

    let (status, problem) =
        app.post("/api/v1/sessions/checker/numbers/check", &admin, json!({ "numbers": ["nope"] })).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_phone")));
    let (status, _) =
        app.post("/api/v1/sessions/checker/numbers/check", &admin, json!({ "numbers": [] })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn groups_list_and_group_messages() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    app.linked(&admin, "grouper", "+6281200000022").await;
    let (status, group) = app
        .post(
            "/api/v1/sandbox/sessions/grouper/groups",
            &admin,
            json!({ "subject": "Family", "participants": ["+6281234500081", "+6281234500082"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let jid = group["jid"].as_str().unwrap().to_owned();
    let (status, groups) = app.get("/api/v1/sessions/grouper/groups", &admin).await;
    assert_eq!(status, StatusCode::OK);
    let listed = &groups["groups"][0];
    assert_eq!((listed["jid"].as_str(), listed["subject"].as_str()), (Some(jid.as_str()), Some("Family")));
    assert_eq!(listed["participant_count"], 3);
    assert_eq!((listed["is_admin"].as_bool(), listed["is_super_admin"].as_bool()), (Some(true), Some(true)));

    let (status, accepted) = app
        .post("/api/v1/sessions/grouper/messages", &admin, json!({ "to": jid, "text": "dinner at 7" }))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    for _ in 0..100 {
        let (_, inbox) = app.get("/api/v1/sandbox/inbox/+6281234500082", &admin).await;
        if let Some(first) = inbox["messages"].as_array().unwrap().first() {
            assert_eq!(first["group"], jid.as_str());
            assert_eq!(first["content"]["body"], "dinner at 7");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the group message never reached a member");
}

#[tokio::test]
async fn phone_numbers_are_formatted() {
    let app = TestApp::spawn_with(|c| c.default_region = Some("ID".into())).await;
    let admin = app.admin().await;
    let (status, formatted) = app.get("/api/v1/phone/format?number=08123456789", &admin).await;
    assert_eq!(status, StatusCode::OK, "{formatted}");
    assert_eq!(formatted["e164"], "+628123456789");
    assert_eq!(formatted["jid"], "628123456789@s.whatsapp.net");
    assert_eq!(formatted["region"], "ID");
    let (_, us) = app.get("/api/v1/phone/format?number=(415)%20555-2671&region=US", &admin).await;
    assert_eq!(us["e164"], "+14155552671");
    let (status, problem) = app.get("/api/v1/phone/format?number=12", &admin).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_phone")));
    let (status, problem) = app.get("/api/v1/phone/format", &admin).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_query")));
}
