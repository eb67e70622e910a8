//! Webhooks (endpoints, delivery log, replay), API keys, users, and the sandbox's test actions.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::Deserialize;
use serde_json::json;
use wagate_core::{Role, Scope, ScopeSet, SessionId};

use super::auth::{AdminSession, NoFields, SignedForm, with_session};
use super::sessions::failed;
use super::{done, page, refused, when};
use crate::app::AppState;
use crate::error::ApiError;
use crate::http::sessions::{parse_phone, visible_session};
use wagate_service::webhooks::Replay;

#[derive(Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

pub async fn webhooks(
    State(state): State<AppState>,
    session: AdminSession,
    Query(q): Query<NoticeQuery>,
) -> Response {
    let principal = &session.principal;
    let endpoints = match state.sessions.webhooks().endpoints_with_recent_deliveries(principal, 20).await {
        Ok(endpoints) => endpoints,
        Err(err) => return failed(err.into()),
    };
    let mut rows = Vec::new();
    for (endpoint, deliveries) in &endpoints {
        let dead = deliveries.iter().filter(|d| d.status == "dead").count();
        let log: Vec<_> = deliveries
            .iter()
            .map(|d| {
                json!({
                    "event": d.event_type, "status": d.status, "attempts": d.attempts, "code": d.last_status,
                    "error": d.last_error, "at": when(d.created_at),
                })
            })
            .collect();
        rows.push(json!({
            "id": endpoint.id, "url": endpoint.url, "events": endpoint.events.join(", "), "enabled": endpoint.enabled,
            "session": endpoint.session_id.as_ref().map(SessionId::as_str), "dead": dead, "deliveries": log,
        }));
    }
    with_session(
        &session,
        page::signed_in(
            &session,
            "webhooks.html",
            "webhooks",
            context! { title => "Webhooks", endpoints => rows, notice => q.notice },
        ),
    )
}

/// Queues the endpoint's dead letters again.
pub async fn replay_dead(
    State(state): State<AppState>,
    Path(id): Path<String>,
    SignedForm(session, _): SignedForm<NoFields>,
) -> Response {
    let principal = &session.principal;
    let webhooks = state.sessions.webhooks();
    let endpoint = match webhooks.endpoint(principal, &id).await {
        Ok(endpoint) => endpoint,
        Err(_) => return page::not_found(),
    };
    if let Err(err) = principal.require(Scope::Sessions) {
        return failed(err.into());
    }
    match webhooks.replay(&endpoint, Replay::DeadLetters).await {
        Ok(queued) => done("/admin/webhooks", &format!("{queued} deliveries queued again")),
        Err(err) => failed(err.into()),
    }
}

pub async fn api_keys(
    State(state): State<AppState>,
    session: AdminSession,
    Query(q): Query<NoticeQuery>,
) -> Response {
    render_keys(&state, &session, q.notice, None).await
}

async fn render_keys(
    state: &AppState,
    session: &AdminSession,
    notice: Option<String>,
    new_key: Option<String>,
) -> Response {
    let keys = match state.accounts.api_keys(session.principal.owner_filter()).await {
        Ok(keys) => keys,
        Err(err) => return failed(err.into()),
    };
    let rows: Vec<_> = keys
        .iter()
        .map(|k| {
            json!({
                "id": k.id, "name": k.name, "prefix": k.prefix,
                "scopes": k.scopes.iter().map(Scope::as_str).collect::<Vec<_>>().join(", "),
                "sessions": k.sessions.as_ref().map(|s| s.iter().map(SessionId::as_str).collect::<Vec<_>>().join(", ")),
                "created": when(k.created_at), "last_used": k.last_used_at.map(when), "revoked": k.revoked_at.is_some(),
            })
        })
        .collect();
    let scopes: Vec<&str> =
        Scope::ALL.iter().filter(|s| session.principal.scopes.allows(**s)).map(|s| s.as_str()).collect();
    with_session(
        session,
        page::signed_in(
            session,
            "api_keys.html",
            "api-keys",
            context! { title => "API keys", keys => rows, scopes => scopes, new_key => new_key, notice => notice },
        ),
    )
}

/// The form posts `scope` once per ticked box.
pub async fn create_api_key(State(state): State<AppState>, session: AdminSession, body: String) -> Response {
    let fields = url_decoded_pairs(&body);
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    if let Err(refused) = session.check_csrf(&field("csrf").unwrap_or_default()) {
        return refused.into_response();
    }
    let scopes: Vec<Scope> =
        fields.iter().filter(|(k, _)| k == "scope").filter_map(|(_, v)| v.parse().ok()).collect();
    let sessions = match field("sessions").filter(|s| !s.trim().is_empty()) {
        None => None,
        Some(list) => {
            let mut ids = Vec::new();
            for raw in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match visible_session(&state, &session.principal, raw).await {
                    Ok(record) => ids.push(record.id),
                    Err(err) => return failed(err),
                }
            }
            Some(ids)
        }
    };
    let name = field("name").unwrap_or_default();
    match state
        .accounts
        .create_api_key(&session.principal, &name, ScopeSet::new(scopes), sessions, None)
        .await
    {
        Ok(new) => {
            render_keys(
                &state,
                &session,
                Some("Key created: copy it now, it is not shown again".into()),
                Some(new.key),
            )
            .await
        }
        Err(err) => failed(err.into()),
    }
}

/// `application/x-www-form-urlencoded` pairs, repeated names kept.
fn url_decoded_pairs(body: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(body.as_bytes()).into_owned().collect()
}

pub async fn revoke_api_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
    SignedForm(session, _): SignedForm<NoFields>,
) -> Response {
    let principal = &session.principal;
    match state.accounts.api_key(&id).await {
        Ok(key) if principal.owns(&key.user_id) => {}
        _ => return page::not_found(),
    }
    match state.accounts.revoke_api_key(&id).await {
        Ok(()) => done("/admin/api-keys", "Key revoked"),
        Err(err) => failed(err.into()),
    }
}

/// Users are managed by admins only; others see no such page.
fn is_admin(session: &AdminSession) -> bool {
    session.principal.sees_all()
}

pub async fn users(
    State(state): State<AppState>,
    session: AdminSession,
    Query(q): Query<NoticeQuery>,
) -> Response {
    if !is_admin(&session) {
        return page::not_found();
    }
    let users = match state.accounts.users().await {
        Ok(users) => users,
        Err(err) => return failed(err.into()),
    };
    let rows: Vec<_> = users
        .iter()
        .map(|u| json!({ "id": u.id, "username": u.username, "role": u.role.as_str(), "disabled": u.disabled, "created": when(u.created_at) }))
        .collect();
    with_session(
        &session,
        page::signed_in(
            &session,
            "users.html",
            "users",
            context! { title => "Users", users => rows, notice => q.notice },
        ),
    )
}

#[derive(Deserialize)]
pub struct UserForm {
    username: Option<String>,
    password: Option<String>,
    role: Option<String>,
}

pub async fn create_user(
    State(state): State<AppState>,
    SignedForm(session, form): SignedForm<UserForm>,
) -> Response {
    if !is_admin(&session) {
        return page::not_found();
    }
    let role = match form.role.as_deref().unwrap_or("user").parse::<Role>() {
        Ok(role) => role,
        Err(err) => return refused(&err),
    };
    let username = form.username.unwrap_or_default();
    match state.accounts.create_user(&username, form.password.as_deref().unwrap_or(""), role).await {
        Ok(user) => done("/admin/users", &format!("User {} created", user.username)),
        Err(err) => failed(err.into()),
    }
}

pub async fn user_action(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    SignedForm(session, form): SignedForm<UserForm>,
) -> Response {
    if !is_admin(&session) {
        return page::not_found();
    }
    let user = match state.accounts.user(&id).await {
        Ok(user) => user,
        Err(_) => return page::not_found(),
    };
    let result = match action.as_str() {
        "disable" if user.id == session.principal.user_id => {
            Err(ApiError::conflict("cannot_disable_self", "you cannot disable your own account"))
        }
        "disable" => {
            state.accounts.set_disabled(&user.id, true).await.map(|()| "User disabled").map_err(Into::into)
        }
        "enable" => {
            state.accounts.set_disabled(&user.id, false).await.map(|()| "User enabled").map_err(Into::into)
        }
        "password" => state
            .accounts
            .set_password(&user.username, form.password.as_deref().unwrap_or(""))
            .await
            .map(|()| "Password changed")
            .map_err(Into::into),
        _ => return page::not_found(),
    };
    match result {
        Ok(notice) => done("/admin/users", notice),
        Err(err) => failed(err),
    }
}

#[derive(Deserialize)]
pub struct SandboxQuery {
    phone: Option<String>,
    notice: Option<String>,
}

pub async fn sandbox(
    State(state): State<AppState>,
    session: AdminSession,
    Query(q): Query<SandboxQuery>,
) -> Response {
    let enabled = state.sessions.engines().kinds().contains(&wagate_core::EngineKind::Sandbox);
    let mut inbox = Vec::new();
    let mut phone = None;
    #[cfg(feature = "sandbox")]
    if let (Some(raw), Some(network)) =
        (q.phone.as_deref().filter(|p| !p.trim().is_empty()), state.sessions.engines().sandbox())
    {
        let parsed = match parse_phone(&state, raw) {
            Ok(parsed) => parsed,
            Err(err) => return failed(err),
        };
        let visible: Vec<String> = crate::http::sessions::visible_sessions(&state, &session.principal)
            .await
            .unwrap_or_default()
            .iter()
            .map(|s| s.id.to_string())
            .collect();
        let delivered = match network.inbox(&parsed).await {
            Ok(delivered) => delivered,
            Err(err) => return failed(crate::http::sandbox::sandbox_error(err)),
        };
        inbox = delivered
            .into_iter()
            .filter(|m| visible.contains(&m.session_id))
            .map(|m| {
                let text = m.content.text().map(str::to_owned).unwrap_or_else(|| m.content.kind().to_owned());
                json!({ "id": m.id, "from": m.from, "session": m.session_id, "text": text, "at": when(m.received_at) })
            })
            .collect();
        phone = Some(parsed.e164().to_owned());
    }
    let sessions: Vec<String> = crate::http::sessions::visible_sessions(&state, &session.principal)
        .await
        .unwrap_or_default()
        .iter()
        .filter(|s| state.sessions.capabilities(s).simulated)
        .map(|s| s.id.to_string())
        .collect();
    with_session(
        &session,
        page::signed_in(
            &session,
            "sandbox.html",
            "sandbox",
            context! { title => "Sandbox", enabled => enabled, inbox => inbox, phone => phone, sessions => sessions, notice => q.notice },
        ),
    )
}

#[derive(Deserialize)]
pub struct InboundForm {
    session: String,
    from: String,
    text: String,
}

pub async fn sandbox_inbound(
    State(state): State<AppState>,
    SignedForm(session, form): SignedForm<InboundForm>,
) -> Response {
    let record = match visible_session(&state, &session.principal, &form.session).await {
        Ok(record) => record,
        Err(_) => return page::not_found(),
    };
    let from = match parse_phone(&state, &form.from) {
        Ok(from) => from,
        Err(err) => return failed(err),
    };
    if form.text.is_empty() {
        return refused("write the message's text");
    }
    #[cfg(feature = "sandbox")]
    if let Some(network) = state.sessions.engines().sandbox() {
        return match network.inject(&record.id, from, form.text, None).await {
            Ok(_) => done("/admin/sandbox", "Message delivered to the session"),
            Err(err) => refused(&err.to_string()),
        };
    }
    let _ = (record, from);
    refused("the sandbox engine is disabled")
}
