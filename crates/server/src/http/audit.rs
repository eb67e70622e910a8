//! The audit trail of requests that change something: who (the authenticated caller), what (a
//! kind named after the route), when, from which address, and the answer's status. Sends,
//! one-time passwords and number checks have their own logs and are not repeated here;
//! sign-ins are recorded by the accounts service, which also sees the failed ones.

use std::sync::{Arc, Mutex};

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::response::Response;
use wagate_service::audit::{Actor, Entry, Level};
use wagate_service::auth::Principal;

use crate::app::AppState;
use crate::http::Rest;

/// What the handler learned for the trail written after the answer: who called, and the
/// session acted on when the path does not name it (a session just created).
#[derive(Default)]
struct Noted {
    principal: Option<Principal>,
    session: Option<String>,
}

#[derive(Clone, Default)]
struct Caller(Arc<Mutex<Noted>>);

impl Caller {
    fn note(&self, write: impl FnOnce(&mut Noted)) {
        write(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

// The request's notes, reachable from anywhere in its handler.
tokio::task_local! {
    static CALLER: Caller;
}

/// Notes who is calling (authentication calls it).
pub(crate) fn remember(principal: &Principal) {
    let _ = CALLER.try_with(|caller| caller.note(|noted| noted.principal = Some(principal.clone())));
}

/// Notes the session a request acted on, when its path does not name it.
pub(crate) fn remember_session(id: &str) {
    let _ = CALLER.try_with(|caller| caller.note(|noted| noted.session = Some(id.to_owned())));
}

/// `(method, route, kind)`: the changes recorded. `{action}` in a kind is the route's own
/// `{action}` segment. A test checks every changing route of the API is here or in
/// [`NOT_AUDITED`].
pub(crate) const AUDITED: &[(Method, &str, &str)] = &[
    (Method::POST, "/api/v1/sessions", "session.created"),
    (Method::PATCH, "/api/v1/sessions/{id}", "session.changed"),
    (Method::DELETE, "/api/v1/sessions/{id}", "session.deleted"),
    (Method::POST, "/api/v1/sessions/{id}/connect", "session.connect_requested"),
    (Method::POST, "/api/v1/sessions/{id}/disconnect", "session.disconnect_requested"),
    (Method::POST, "/api/v1/sessions/{id}/restart", "session.restart_requested"),
    (Method::POST, "/api/v1/sessions/{id}/logout", "session.logout_requested"),
    (Method::POST, "/api/v1/sessions/{id}/pair-code", "session.pair_code_requested"),
    (Method::POST, "/api/v1/api-keys", "api_key.created"),
    (Method::DELETE, "/api/v1/api-keys/{id}", "api_key.revoked"),
    (Method::POST, "/api/v1/users", "user.created"),
    (Method::PATCH, "/api/v1/users/{id}", "user.changed"),
    (Method::POST, "/api/v1/webhooks", "webhook.created"),
    (Method::PATCH, "/api/v1/webhooks/{id}", "webhook.changed"),
    (Method::DELETE, "/api/v1/webhooks/{id}", "webhook.deleted"),
    (Method::POST, "/api/v1/webhooks/{id}/replay", "webhook.replayed"),
    (Method::PATCH, "/api/v1/otp/settings", "settings.otp_changed"),
    (Method::PUT, "/api/v1/otp/templates/{name}/{locale}", "settings.otp_template_saved"),
    (Method::DELETE, "/api/v1/otp/templates/{name}/{locale}", "settings.otp_template_deleted"),
    (Method::DELETE, "/api/v1/otp/phones/{phone}/failures", "otp.phone_failures_cleared"),
    (Method::POST, "/api/v1/otp/{id}/cancel", "otp.canceled"),
    (Method::DELETE, "/api/v1/messages/{id}", "message.canceled"),
    (Method::POST, "/api/v1/messages/{id}/retry", "message.retried"),
    (Method::POST, "/api/v1/analytics/cleanup", "analytics.cleanup"),
    (Method::POST, "/api/sessions", "session.created"),
    (Method::POST, "/api/sessions/create", "session.created"),
    (Method::DELETE, "/api/sessions/{id}", "session.deleted"),
    (Method::POST, "/api/sessions/{id}/connect", "session.connect_requested"),
    (Method::POST, "/api/sessions/{id}/disconnect", "session.disconnect_requested"),
    (Method::PUT, "/api/sessions/{id}/restart", "session.restart_requested"),
    (Method::PUT, "/api/sessions/{id}/name", "session.changed"),
    (Method::PUT, "/api/sessions/{id}/webhook", "session.changed"),
    (Method::POST, "/api/analytics/cleanup", "analytics.cleanup"),
    (Method::POST, "/admin/logout", "auth.signed_out"),
    (Method::POST, "/admin/sessions", "session.created"),
    (Method::POST, "/admin/sessions/{id}/{action}", "session.{action}_requested"),
    (Method::POST, "/admin/messages/{id}/{action}", "message.{action}_requested"),
    (Method::POST, "/admin/otp/{id}/cancel", "otp.canceled"),
    (Method::POST, "/admin/otp/phones/reset", "otp.phone_failures_cleared"),
    (Method::POST, "/admin/webhooks/{id}/replay", "webhook.replayed"),
    (Method::POST, "/admin/api-keys", "api_key.created"),
    (Method::POST, "/admin/api-keys/{id}/revoke", "api_key.revoked"),
    (Method::POST, "/admin/users", "user.created"),
    (Method::POST, "/admin/users/{id}/{action}", "user.{action}_requested"),
];

/// Changing routes left out of the trail, and why.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const NOT_AUDITED: &[(&str, &str)] = &[
    ("/api/v1/auth/login", "sign-ins are recorded by the accounts service, failures included"),
    ("/api/login", "sign-ins are recorded by the accounts service, failures included"),
    ("/api/v1/messages", "sends: the messages themselves are the record"),
    ("/api/v1/sessions/{id}/messages", "sends: the messages themselves are the record"),
    ("/api/send", "sends: the messages themselves are the record"),
    ("/api/sessions/{id}/send", "sends: the messages themselves are the record"),
    ("/api/messages/{session}/", "sends: the messages themselves are the record"),
    ("/api/v1/otp/send", "the OTP log records every verification"),
    ("/api/v1/otp/verify", "the OTP log records every verification"),
    ("/api/v1/otp/{id}/resend", "the OTP log records every verification"),
    ("/api/otp/", "the OTP log records every verification"),
    ("/api/v1/sessions/{id}/numbers/check", "a read: nothing changes"),
    ("/api/sessions/{id}/check-number", "a read: nothing changes"),
    ("/api/v1/sessions/{id}/stream-token", "a read: nothing changes"),
    ("/api/v1/sandbox/", "the sandbox's simulated phone: test traffic"),
];

/// Gives every request a place for its caller, and records the audited ones that succeeded.
pub(crate) async fn audit_trail(state: &AppState, request: Request, next: impl Rest) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.answer(request).await;
    }
    let caller = Caller::default();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().map(|path| path.as_str().to_owned());
    let path = request.uri().path().to_owned();
    let response = CALLER.scope(caller.clone(), next.answer(request)).await;
    let status = response.status();
    let Some(route) = route else { return response };
    // Dashboard forms answer with a redirect whether or not the action was done.
    if status.is_client_error() || status.is_server_error() {
        return response;
    }
    let Some(kind) = AUDITED.iter().find(|(m, r, _)| *m == method && *r == route).map(|(_, _, kind)| *kind)
    else {
        return response;
    };
    let noted = std::mem::take(&mut *caller.0.lock().unwrap_or_else(|p| p.into_inner()));
    let Some(principal) = noted.principal else { return response };
    let params = path_params(&route, &path);
    let param = |name: &str| params.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone());
    let kind = match param("action") {
        Some(action) => kind.replace("{action}", &action.replace('-', "_")),
        None => kind.to_owned(),
    };
    let mut entry = Entry::new(kind, Level::Info, Actor::of(&principal)).detail(serde_json::json!({
        "method": method.as_str(),
        "route": route,
        "target": param("id"),
        "status": status.as_u16(),
        "api_key_id": principal.api_key_id,
    }));
    let session = if route.contains("/sessions/{id}") { param("id") } else { noted.session };
    if let Some(id) = session {
        entry = entry.session(&id);
    }
    state.audit.record(entry).await;
    response
}

/// The values of the route's `{name}` segments in `path`.
fn path_params<'r>(route: &'r str, path: &str) -> Vec<(&'r str, String)> {
    route
        .split('/')
        .zip(path.split('/'))
        .filter_map(|(pattern, value)| {
            let name = pattern.strip_prefix('{')?.strip_suffix('}')?;
            Some((name, percent_decode(value)))
        })
        .collect()
}

fn percent_decode(value: &str) -> String {
    percent_encoding::percent_decode_str(value).decode_utf8_lossy().chars().take(100).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new route that changes something must be placed: in the trail, or out of it for a reason.
    #[test]
    fn every_changing_route_is_audited_or_left_out_for_a_reason() {
        let document = crate::http::openapi::ApiDoc::document();
        let mut unplaced = Vec::new();
        for (path, item) in &document.paths.paths {
            let methods = [
                (Method::POST, item.post.is_some()),
                (Method::PUT, item.put.is_some()),
                (Method::PATCH, item.patch.is_some()),
                (Method::DELETE, item.delete.is_some()),
            ];
            for (method, present) in methods {
                let audited = AUDITED.iter().any(|(m, r, _)| *m == method && r == path);
                let left_out = NOT_AUDITED.iter().any(|(prefix, _)| path.starts_with(prefix));
                if present && !audited && !left_out {
                    unplaced.push(format!("{method} {path}"));
                }
            }
        }
        assert!(unplaced.is_empty(), "routes neither audited nor left out: {unplaced:?}");
    }

    #[test]
    fn path_parameters_are_read_by_the_routes_pattern() {
        let params = path_params("/admin/sessions/{id}/{action}", "/admin/sessions/sales%201/log-out");
        assert_eq!(params, vec![("id", "sales 1".to_owned()), ("action", "log-out".to_owned())]);
    }
}
