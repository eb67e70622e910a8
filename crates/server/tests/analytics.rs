//! Analytics and logs: the dashboard's figures per period, a session's days, the activity,
//! error and OTP logs (JSON pages and CSV), tenants kept apart, cleanup for admins only.

mod common;

use std::time::Duration;

use common::{TestApp, read};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn code_from_inbox(app: &TestApp, token: &str, phone: &str) -> String {
    for _ in 0..250 {
        let (_, inbox) = app.get(&format!("/api/v1/sandbox/inbox/{phone}"), token).await;
        if let Some(text) = inbox["messages"][0]["content"]["body"].as_str() {
            return text.split('*').nth(1).unwrap_or_else(|| panic!("no *code* in {text}")).to_owned();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no code reached {phone}");
}

fn entries(page: &Value) -> Vec<Value> {
    page["entries"].as_array().unwrap_or_else(|| panic!("no entries: {page}")).clone()
}

fn kinds(page: &Value) -> Vec<String> {
    entries(page).iter().map(|e| e["kind"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn the_dashboard_counts_each_tenants_own_messages_and_codes_per_period() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let ana = app.create_user(&admin, "ana").await;
    let ben = app.create_user(&admin, "ben").await;
    app.linked(&ana, "ana-1", "+6281200000081").await;
    let send = |to: &str, kind: Value| {
        let mut body = json!({ "to": to });
        body.as_object_mut().unwrap().extend(kind.as_object().unwrap().clone());
        app.post("/api/v1/sessions/ana-1/messages", &ana, body)
    };
    send("+6281234580001", json!({ "text": "one" })).await;
    send("+6281234580002", json!({ "location": { "latitude": -6.2, "longitude": 106.8 } })).await;
    let (_, doomed) = send("+6281234560000", json!({ "text": "nobody there" })).await;
    app.wait_for_message(&ana, doomed["id"].as_str().unwrap(), |m| m["status"] == "failed").await;

    let (status, approved) = app.post("/api/v1/otp/send", &ana, json!({ "phone": "+6281234580011" })).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{approved}");
    let code = code_from_inbox(&app, &ana, "+6281234580011").await;
    let (status, verified) =
        app.post("/api/v1/otp/verify", &ana, json!({ "id": approved["id"], "code": code })).await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    app.post("/api/v1/otp/send", &ana, json!({ "phone": "+6281234580012" })).await;

    let (status, board) = app.get("/api/v1/analytics/dashboard", &ana).await;
    assert_eq!(status, StatusCode::OK, "{board}");
    assert_eq!(board["sessions"], json!({ "connected": 1 }));
    let periods: Vec<&str> =
        board["periods"].as_array().unwrap().iter().map(|p| p["period"].as_str().unwrap()).collect();
    assert_eq!(periods, ["today", "7d", "30d"]);
    for period in board["periods"].as_array().unwrap() {
        let messages = &period["messages"];
        assert_eq!(messages["by_status"]["failed"], 1, "{period}");
        assert_eq!(messages["by_type"]["location"], 1, "{period}");
        // Two texts of ours and two one-time passwords.
        assert_eq!(messages["by_type"]["text"], 4, "{period}");
        assert_eq!(messages["total"], 5, "{period}");
        let otp = &period["otp"];
        assert_eq!(
            (otp["sent"].as_i64(), otp["approved"].as_i64(), otp["pending"].as_i64()),
            (Some(2), Some(1), Some(1))
        );
        assert_eq!(otp["conversion_rate"], 0.5, "{period}");
    }

    let (_, other) = app.get("/api/v1/analytics/dashboard", &ben).await;
    assert_eq!(other["sessions"], json!({}), "another tenant's sessions are not counted: {other}");
    assert_eq!(other["periods"][2]["messages"]["total"], 0, "{other}");
    assert_eq!(other["periods"][2]["otp"]["sent"], 0, "{other}");
    let (_, everyone) = app.get("/api/v1/analytics/dashboard", &admin).await;
    assert_eq!(everyone["periods"][0]["messages"]["total"], 5, "an admin sees every tenant: {everyone}");

    // A session's days: today holds everything, the days before are there with zeros.
    let (status, stats) = app.get("/api/v1/analytics/sessions/ana-1/stats?days=3", &ana).await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    let days = stats["days"].as_array().unwrap();
    assert_eq!(days.len(), 3);
    assert_eq!(days[0]["messages_total"], 0);
    assert_eq!(days[2]["messages_total"], 5, "{stats}");
    assert_eq!(days[2]["messages_by_status"]["failed"], 1);
    assert_eq!(stats["messages_total"], 5);
    let (status, _) = app.get("/api/v1/analytics/sessions/ana-1/stats", &ben).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another tenant's session does not exist for ben");
    let (status, problem) = app.get("/api/v1/analytics/sessions/ana-1/stats?days=91", &ana).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_query")));

    // Seed 001's paths and envelope.
    let (status, seed) = app.get("/api/analytics/dashboard", &ana).await;
    assert_eq!((status, &seed["success"]), (StatusCode::OK, &json!(true)), "{seed}");
    assert_eq!(seed["data"]["periods"][0]["otp"]["approved"], 1);
    let (status, seed) = app.get("/api/analytics/sessions/ana-1/stats", &ana).await;
    assert_eq!((status, seed["data"]["days"].as_array().map(Vec::len)), (StatusCode::OK, Some(7)));

    // The OTP log: figures by outcome and the verifications, never the codes.
    let (status, log) = app.get("/api/v1/analytics/logs/otp", &ana).await;
    assert_eq!(status, StatusCode::OK, "{log}");
    assert_eq!(log["stats"]["sent"], 2);
    assert_eq!(log["verifications"].as_array().unwrap().len(), 2);
    assert!(!log.to_string().contains(&format!("\"{code}\"")), "a code never shows in the log: {log}");
    let response =
        app.request(Method::GET, "/api/v1/analytics/logs/otp?format=csv", Some(&ana)).send().await.unwrap();
    let text = response.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("created_at,id,phone,status"), "{text}");
    assert_eq!(lines.len(), 3, "a header and two verifications: {text}");
    assert!(text.contains("+6281234580011") && text.contains("approved"), "{text}");
    let (_, seed) = app.get("/api/analytics/logs/otp", &ben).await;
    assert_eq!(seed["data"]["verifications"], json!([]), "ben sees none of ana's: {seed}");
}

#[tokio::test]
async fn the_activity_log_says_who_did_what_from_where_and_tenants_see_only_their_own() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let ana = app.create_user(&admin, "ana").await;
    let ben = app.create_user(&admin, "ben").await;
    let response = app
        .request(Method::POST, "/api/v1/auth/login", None)
        .json(&json!({ "username": "ana", "password": "wrong-password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    app.linked(&ana, "ana-1", "+6281200000082").await;
    app.create_session(&ana, "ana-2").await;
    let (_, key) = app.post("/api/v1/api-keys", &ana, json!({ "name": "ci", "scopes": ["send"] })).await;
    let (status, _) = app
        .call(Method::DELETE, &format!("/api/v1/api-keys/{}", key["id"].as_str().unwrap()), &ana, Value::Null)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.call(Method::DELETE, "/api/v1/sessions/ana-2", &ana, Value::Null).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.call(Method::DELETE, "/api/v1/sessions/nobody", &ana, Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a refused request is not recorded as done");

    let (status, page) = app.get("/api/v1/analytics/logs/activity?limit=200", &ana).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let lines = entries(&page);
    let find = |kind: &str| {
        lines.iter().find(|e| e["kind"] == kind).unwrap_or_else(|| panic!("no {kind} in {page}")).clone()
    };
    let failed = find("auth.sign_in_failed");
    assert_eq!((failed["actor"].as_str(), failed["level"].as_str()), (Some("ana"), Some("warning")));
    assert_eq!(failed["ip"], "127.0.0.1");
    let signed_in = find("auth.signed_in");
    assert_eq!((signed_in["actor"].as_str(), signed_in["ip"].as_str()), (Some("ana"), Some("127.0.0.1")));
    let created = lines
        .iter()
        .find(|e| e["kind"] == "session.created" && e["session_id"] == "ana-1")
        .unwrap_or_else(|| panic!("no creation of ana-1 in {page}"));
    assert_eq!((created["actor"].as_str(), created["ip"].as_str()), (Some("ana"), Some("127.0.0.1")));
    let connected = find("session.connected");
    assert_eq!(
        (connected["actor"].as_str(), connected["session_id"].as_str()),
        (Some("system"), Some("ana-1"))
    );
    assert_eq!(find("api_key.created")["detail"]["status"], 201);
    assert_eq!(find("api_key.revoked")["detail"]["target"], key["id"]);
    assert_eq!(find("session.deleted")["session_id"], "ana-2");
    assert!(!lines.iter().any(|e| e["detail"]["target"] == "nobody"), "{page}");
    let times: Vec<&str> = lines.iter().map(|e| e["created_at"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");

    // Filters, pages, CSV.
    let (_, only) = app.get("/api/v1/analytics/logs/activity?kind=session.created", &ana).await;
    assert_eq!(kinds(&only), ["session.created", "session.created"]);
    let (_, one_session) = app.get("/api/v1/analytics/logs/activity?session_id=ana-2", &ana).await;
    assert_eq!(kinds(&one_session), ["session.deleted", "session.created"]);
    let (_, first) = app.get("/api/v1/analytics/logs/activity?limit=2", &ana).await;
    let cursor = first["next_cursor"].as_str().expect("more than one page").to_owned();
    let (_, second) =
        app.get(&format!("/api/v1/analytics/logs/activity?limit=2&cursor={cursor}"), &ana).await;
    let ids = |p: &Value| entries(p).iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    assert_eq!([ids(&first), ids(&second)].concat(), ids(&page)[..4].to_vec(), "pages follow each other");
    let (status, problem) = app.get("/api/v1/analytics/logs/activity?cursor=nonsense", &ana).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_query")));
    let (status, problem) = app.get("/api/v1/analytics/logs/activity?since=yesterday", &ana).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_query")));
    let response = app
        .request(Method::GET, "/api/v1/analytics/logs/activity?format=csv", Some(&ana))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let text = response.text().await.unwrap();
    assert!(text.starts_with("created_at,kind,level,actor,session_id,ip,detail,id\n"), "{text}");
    assert_eq!(text.lines().count(), lines.len() + 1, "{text}");
    assert!(text.contains(",session.created,info,ana,ana-1,127.0.0.1,"), "{text}");

    // Another tenant sees none of it; an admin sees everyone's.
    let (_, theirs) = app.get("/api/v1/analytics/logs/activity?limit=200", &ben).await;
    assert!(entries(&theirs).iter().all(|e| e["actor"] != "ana" && e["session_id"].is_null()), "{theirs}");
    let (_, all) = app.get("/api/v1/analytics/logs/activity?limit=200&kind=session.created", &admin).await;
    assert_eq!(entries(&all).len(), 2);
    // A key limited to one session reads that session's lines only.
    let (_, limited) = app
        .post("/api/v1/api-keys", &ana, json!({ "name": "one", "scopes": ["read"], "sessions": ["ana-1"] }))
        .await;
    let (_, seen) =
        app.get("/api/v1/analytics/logs/activity?limit=200", limited["key"].as_str().unwrap()).await;
    assert!(!entries(&seen).is_empty());
    assert!(entries(&seen).iter().all(|e| e["session_id"] == "ana-1"), "{seen}");
    let (status, _) = app.get("/api/v1/analytics/logs/activity", key["key"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the revoked key reads nothing");

    // Seed 001's envelope.
    let (status, seed) = app.get("/api/analytics/logs/activity?kind=auth.signed_in", &ana).await;
    assert_eq!((status, &seed["success"]), (StatusCode::OK, &json!(true)), "{seed}");
    assert!(!seed["data"]["entries"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn failures_reach_the_error_log_and_only_admins_clean_up() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let ana = app.create_user(&admin, "ana").await;
    app.linked(&ana, "ana-1", "+6281200000083").await;
    let (_, doomed) = app
        .post("/api/v1/sessions/ana-1/messages", &ana, json!({ "to": "+6281234560000", "text": "x" }))
        .await;
    app.wait_for_message(&ana, doomed["id"].as_str().unwrap(), |m| m["status"] == "failed").await;

    let (status, errors) = app.get("/api/v1/analytics/logs/errors", &ana).await;
    assert_eq!(status, StatusCode::OK, "{errors}");
    let failed =
        entries(&errors).into_iter().find(|e| e["kind"] == "message.failed").expect("the failure is logged");
    assert_eq!(failed["level"], "error");
    assert_eq!(failed["session_id"], "ana-1");
    assert_eq!(failed["detail"]["message_id"], doomed["id"]);
    assert!(failed["detail"]["reason"].as_str().is_some_and(|r| !r.is_empty()), "{failed}");
    assert!(entries(&errors).iter().all(|e| e["level"] != "info"), "{errors}");
    let (_, seed) = app.get("/api/analytics/logs/errors?format=csv", &ana).await;
    assert!(seed.as_str().is_some_and(|csv| csv.starts_with("created_at,")), "CSV is not wrapped: {seed}");
    let response =
        app.request(Method::GET, "/api/analytics/logs/errors?format=csv", Some(&ana)).send().await.unwrap();
    assert!(response.text().await.unwrap().contains(",message.failed,error,system,ana-1,"));

    // An old line, written straight into the database, goes; today's stay.
    sqlx::any::install_default_drivers();
    let url = app.database_url();
    let mut db = <sqlx::AnyConnection as sqlx::Connection>::connect(&url).await.unwrap();
    let long_ago = chrono::Utc::now().timestamp_millis() - 40 * 24 * 3_600_000;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO activity_log (id, owner_id, actor, kind, level, created_at) VALUES ('old-line', NULL, 'system', 'x.old', 'info', {long_ago})",
    )))
    .execute(&mut db)
    .await
    .unwrap();

    let (status, problem) = app.post("/api/v1/analytics/cleanup", &ana, Value::Null).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("missing_scope")),
        "{problem}"
    );
    let (status, problem) =
        app.post("/api/v1/analytics/cleanup", &admin, json!({ "activity_days": 0 })).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_days")));
    let (status, problem) = app.post("/api/v1/analytics/cleanup", &admin, json!({ "activity": 3 })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let response = app.request(Method::POST, "/api/v1/analytics/cleanup", Some(&admin)).send().await.unwrap();
    let (status, report) = read(response).await;
    assert_eq!(status, StatusCode::OK, "no body: the configured periods: {report}");
    assert_eq!(report["deleted"]["activity"], 1, "{report}");
    assert_eq!(report["deleted"]["messages"], 0, "today's messages are kept: {report}");
    let (_, all) = app.get("/api/v1/analytics/logs/activity?limit=200", &admin).await;
    assert!(!entries(&all).iter().any(|e| e["id"] == "old-line"));
    assert!(entries(&all).iter().any(|e| e["kind"] == "analytics.cleanup" && e["actor"] == "admin"), "{all}");
    let (status, seed) = app.post("/api/analytics/cleanup", &admin, json!({ "otp_days": 1 })).await;
    assert_eq!((status, &seed["success"]), (StatusCode::OK, &json!(true)), "{seed}");
    assert_eq!(seed["data"]["deleted"]["otp"], 0);
}
