//! Dashboard sign-in: a session cookie (`HttpOnly`, `SameSite=Strict`, `Secure` behind TLS)
//! holding a signed token that expires after a period of inactivity and is renewed while the
//! user is active; CSRF tokens derived from the sign-in's random id.

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::page::{self, Page};
use crate::app::AppState;
use crate::http::extract::ClientIp;
use wagate_service::accounts::AccountError;
use wagate_service::auth::Principal;
use wagate_service::time::now_ms;

pub const SESSION_COOKIE: &str = "wagate_session";
const LOGIN_COOKIE: &str = "wagate_login";
/// A token older than this is renewed on the next request (sliding idle expiry).
const RENEW_AFTER_SECS: i64 = 60;

/// A signed-in dashboard user.
pub struct AdminSession {
    pub principal: Principal,
    pub csrf: String,
    /// A renewed cookie to set on the response.
    pub renewed: Option<HeaderValue>,
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// `Secure` when the request reached us over TLS (directly, or through a proxy that says so).
fn secure(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn set_cookie(headers: &HeaderMap, name: &str, value: &str, max_age: u64) -> HeaderValue {
    let secure = if secure(headers) { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("cookie values are header-safe")
}

fn csrf_token(state: &AppState, sid: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(&state.accounts.secrets().token_key)
        .expect("HMAC takes any key length");
    mac.update(b"wagate dashboard csrf:");
    mac.update(sid.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
}

impl AdminSession {
    /// Refuses a form whose CSRF token is missing or wrong (403, nothing changed).
    pub fn check_csrf(&self, submitted: &str) -> Result<(), CsrfRefused> {
        if bool::from(self.csrf.as_bytes().ct_eq(submitted.as_bytes())) { Ok(()) } else { Err(CsrfRefused) }
    }
}

/// A form without this sign-in's CSRF token.
pub struct CsrfRefused;

impl IntoResponse for CsrfRefused {
    fn into_response(self) -> Response {
        page::error(
            StatusCode::FORBIDDEN,
            "The form expired or did not come from this dashboard. Reload the page and try again.",
        )
    }
}

impl FromRequestParts<AppState> for AdminSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let to_login = || {
            let next = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/admin");
            let next = if parts.method == axum::http::Method::GET { next } else { "/admin" };
            Redirect::to(&format!("/admin/login?next={}", urlencode(next))).into_response()
        };
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else { return Err(to_login()) };
        let Ok(claims) = state.accounts.token_claims(&token) else { return Err(to_login()) };
        let Some(sid) = claims.sid.clone() else { return Err(to_login()) };
        let mut principal = match state.accounts.authenticate_token(&token).await {
            Ok(principal) => principal,
            Err(_) => return Err(to_login()),
        };
        principal.ip = Some(crate::http::extract::client_ip(state, parts));
        crate::http::audit::remember(&principal);
        let idle = state.config.dashboard_idle_secs;
        let renewed = (now_ms() / 1000 - claims.iat >= RENEW_AFTER_SECS).then(|| {
            let token = state.accounts.dashboard_token(&principal.user_id, &sid, idle);
            set_cookie(&parts.headers, SESSION_COOKIE, &token, idle)
        });
        Ok(AdminSession { csrf: csrf_token(state, &sid), principal, renewed })
    }
}

fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Only local paths of the dashboard are followed after sign-in.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(next) if next.starts_with("/admin") && !next.starts_with("//") && !next.contains("://") => next,
        _ => "/admin",
    }
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

pub async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<LoginQuery>,
) -> Response {
    login_form(&state, &headers, query.next.as_deref(), None, StatusCode::OK)
}

fn login_form(
    state: &AppState,
    headers: &HeaderMap,
    next: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let nonce = hex::encode(rand::random::<[u8; 16]>());
    let body = page::render(
        "login.html",
        minijinja::context! { csrf => nonce, next => safe_next(next), error => error, title => "Sign in" },
    );
    let mut response = (status, body).into_response();
    response.headers_mut().append(header::SET_COOKIE, set_cookie(headers, LOGIN_COOKIE, &nonce, 900));
    let _ = state;
    response
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    #[serde(default)]
    csrf: String,
    next: Option<String>,
}

pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !bool::from(expected.as_bytes().ct_eq(form.csrf.as_bytes())) {
        return page::error(
            StatusCode::FORBIDDEN,
            "The sign-in form expired. Reload the page and try again.",
        );
    }
    match state.accounts.login(&ip, form.username.trim(), &form.password).await {
        Ok(success) => {
            let idle = state.config.dashboard_idle_secs;
            let sid = hex::encode(rand::random::<[u8; 16]>());
            let token = state.accounts.dashboard_token(&success.user.id, &sid, idle);
            let mut response = Redirect::to(safe_next(form.next.as_deref())).into_response();
            let cookies = response.headers_mut();
            cookies.append(header::SET_COOKIE, set_cookie(&headers, SESSION_COOKIE, &token, idle));
            cookies.append(header::SET_COOKIE, set_cookie(&headers, LOGIN_COOKIE, "", 0));
            response
        }
        Err(AccountError::RateLimited(wait)) => {
            let mut response = login_form(
                &state,
                &headers,
                form.next.as_deref(),
                Some("Too many attempts. Wait a few minutes and try again."),
                StatusCode::TOO_MANY_REQUESTS,
            );
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait.as_secs() + 1));
            response
        }
        Err(_) => login_form(
            &state,
            &headers,
            form.next.as_deref(),
            Some("Wrong username or password."),
            StatusCode::UNAUTHORIZED,
        ),
    }
}

/// A form posted by the signed-in user with this sign-in's CSRF token: the session and the
/// form's other fields. Without a session: to the sign-in page; with a missing or wrong token:
/// 403, and the handler never runs.
pub struct SignedForm<T>(pub AdminSession, pub T);

/// A form with nothing but its CSRF token.
#[derive(Deserialize)]
pub struct NoFields {}

#[derive(Deserialize)]
struct WithCsrf<T> {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    fields: T,
}

impl<T: serde::de::DeserializeOwned + Send> FromRequest<AppState> for SignedForm<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let session = AdminSession::from_request_parts(&mut parts, state).await?;
        let form = axum::Form::<WithCsrf<T>>::from_request(Request::from_parts(parts, body), state).await;
        let axum::Form(form) =
            form.map_err(|rejection| page::error(StatusCode::UNPROCESSABLE_ENTITY, &rejection.body_text()))?;
        session.check_csrf(&form.csrf).map_err(IntoResponse::into_response)?;
        Ok(SignedForm(session, form.fields))
    }
}

pub async fn logout(headers: HeaderMap, SignedForm(_, NoFields {}): SignedForm<NoFields>) -> Response {
    let mut response = Redirect::to("/admin/login").into_response();
    response.headers_mut().append(header::SET_COOKIE, set_cookie(&headers, SESSION_COOKIE, "", 0));
    response
}

/// Sets a renewed session cookie on a page's response.
pub fn with_session(session: &AdminSession, page: Page) -> Response {
    let mut response = page.into_response();
    if let Some(cookie) = &session.renewed {
        response.headers_mut().append(header::SET_COOKIE, cookie.clone());
    }
    response
}
