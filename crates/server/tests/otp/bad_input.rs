//! Every bad input the OTP API must refuse, with a clear code.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn bad_input_is_refused_with_clear_codes() {
    let (app, admin) = linked_app(|_| {}).await;
    let cases = [
        (json!({ "phone": "12" }), StatusCode::BAD_REQUEST, "invalid_phone"),
        (json!({}), StatusCode::BAD_REQUEST, "missing_field"),
        (
            json!({ "phone": "+6281234560002", "length": 3 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_length",
        ),
        (
            json!({ "phone": "+6281234560002", "length": 11 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_length",
        ),
        (json!({ "phone": "+6281234560002", "ttl": 0 }), StatusCode::UNPROCESSABLE_ENTITY, "invalid_ttl"),
        (json!({ "phone": "+6281234560002", "ttl": 601 }), StatusCode::UNPROCESSABLE_ENTITY, "invalid_ttl"),
        (
            json!({ "phone": "+6281234560002", "locale": "English" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_locale",
        ),
        (
            json!({ "phone": "+6281234560002", "template": "nope" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_template",
        ),
        (
            json!({ "phone": "+6281234560002", "mode": "smoke" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({ "phone": "+6281234560002", "session": "ghost" }),
            StatusCode::NOT_FOUND,
            "session_not_found",
        ),
        (json!({ "phone": "+6281234560002", "pool": "ghost" }), StatusCode::NOT_FOUND, "pool_not_found"),
        (
            json!({ "phone": "+6281234560002", "custom_code": "12ab" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_custom_code",
        ),
    ];
    for (body, status, code) in cases {
        let (got, problem) = app.post("/api/v1/otp/send", &admin, body.clone()).await;
        assert_eq!((got, problem["code"].as_str()), (status, Some(code)), "{body}: {problem}");
    }

    let (_, sent) = app.post("/api/v1/otp/send", &admin, json!({ "phone": "+6281234560002" })).await;
    let id = sent["id"].as_str().unwrap();
    let verify_cases = [
        (json!({ "id": id, "code": "12a456" }), StatusCode::UNPROCESSABLE_ENTITY, "invalid_code"),
        (json!({ "id": id, "code": "123" }), StatusCode::UNPROCESSABLE_ENTITY, "invalid_code"),
        (json!({ "id": id, "code": "12345678901" }), StatusCode::UNPROCESSABLE_ENTITY, "invalid_code"),
        (json!({ "code": "123456" }), StatusCode::UNPROCESSABLE_ENTITY, "missing_field"),
        (json!({ "id": id }), StatusCode::UNPROCESSABLE_ENTITY, "missing_field"),
        (
            json!({ "id": "01234567-0000-7000-8000-000000000000", "code": "123456" }),
            StatusCode::NOT_FOUND,
            "otp_not_found",
        ),
    ];
    for (body, status, code) in verify_cases {
        let (got, problem) = app.post("/api/v1/otp/verify", &admin, body.clone()).await;
        assert_eq!((got, problem["code"].as_str()), (status, Some(code)), "{body}: {problem}");
    }
    let (_, shown) = app.get(&format!("/api/v1/otp/{id}"), &admin).await;
    assert_eq!(shown["attempts"], 0, "malformed codes are not attempts: {shown}");

    // A code of another length is a wrong code, not a format error (it would tell lengths apart).
    let (_, verdict) = app.post("/api/v1/otp/verify", &admin, json!({ "id": id, "code": "1234" })).await;
    assert_eq!(verdict["attempts_left"], 4);

    // Countries: an allow list.
    let (status, settings) =
        app.call(Method::PATCH, "/api/v1/otp/settings", &admin, json!({ "allowed_countries": ["ID"] })).await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    let (status, problem) = app.post("/api/v1/otp/send", &admin, json!({ "phone": "+14155550123" })).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("country_not_allowed"))
    );
    let (status, problem) = app
        .call(Method::PATCH, "/api/v1/otp/settings", &admin, json!({ "denied_countries": ["indonesia"] }))
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_settings"))
    );

    // custom_code needs the admin scope.
    let user = app.create_user(&admin, "otp-user").await;
    app.linked(&user, "user-otp", "+6281200000102").await;
    let (status, problem) = app
        .post("/api/v1/otp/send", &user, json!({ "phone": "+6281234560003", "custom_code": "123456" }))
        .await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::FORBIDDEN, Some("missing_scope")));
    // Tenants are isolated: another tenant's verification does not exist for this user.
    let (status, _) = app.get(&format!("/api/v1/otp/{id}"), &user).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.post("/api/v1/otp/verify", &user, json!({ "id": id, "code": "123456" })).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, log) = app.get("/api/v1/otp", &user).await;
    assert!(log["verifications"].as_array().unwrap().is_empty(), "{log}");

    // Session not connected: 409, nothing stored.
    app.post("/api/v1/sessions/otp/disconnect", &admin, Value::Null).await;
    let (status, problem) =
        app.post("/api/v1/otp/send", &admin, json!({ "phone": "+6281234560004", "session": "otp" })).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::CONFLICT, Some("session_not_connected")));
    let (status, problem) = app.post("/api/v1/otp/send", &admin, json!({ "phone": "+6281234560004" })).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::CONFLICT, Some("no_connected_session")));
    let (_, log) = app.get("/api/v1/otp?phone=%2B6281234560004", &admin).await;
    assert!(log["verifications"].as_array().unwrap().is_empty(), "{log}");
}
