//! Server-rendered pages: minijinja templates embedded in the binary, HTML auto-escaped.

use std::sync::LazyLock;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use minijinja::{Environment, Value, context};

use super::auth::AdminSession;

const TEMPLATES: [(&str, &str); 13] = [
    ("base.html", include_str!("../../../assets/admin/base.html")),
    ("login.html", include_str!("../../../assets/admin/login.html")),
    ("error.html", include_str!("../../../assets/admin/error.html")),
    ("overview.html", include_str!("../../../assets/admin/overview.html")),
    ("sessions.html", include_str!("../../../assets/admin/sessions.html")),
    ("session.html", include_str!("../../../assets/admin/session.html")),
    ("messages.html", include_str!("../../../assets/admin/messages.html")),
    ("message.html", include_str!("../../../assets/admin/message.html")),
    ("otp.html", include_str!("../../../assets/admin/otp.html")),
    ("webhooks.html", include_str!("../../../assets/admin/webhooks.html")),
    ("api_keys.html", include_str!("../../../assets/admin/api_keys.html")),
    ("users.html", include_str!("../../../assets/admin/users.html")),
    ("sandbox.html", include_str!("../../../assets/admin/sandbox.html")),
];

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
    // Every value is HTML-escaped unless a template marks it `|safe` (only server-drawn SVG).
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    // Inline, so a page renders from one request (plus its live stream).
    env.add_global("app_css", Value::from_safe_string(include_str!("../../../assets/admin/app.css").into()));
    env.add_global("app_js", Value::from_safe_string(include_str!("../../../assets/admin/app.js").into()));
    for (name, source) in TEMPLATES {
        env.add_template(name, source).expect("dashboard templates compile");
    }
    env
});

pub type Page = Html<String>;

pub fn render(name: &str, ctx: Value) -> Page {
    match ENV.get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => Html(html),
        Err(err) => {
            tracing::error!(template = name, error = %err, "cannot render a dashboard page");
            Html("<!doctype html><title>Error</title><p>This page could not be shown.</p>".into())
        }
    }
}

/// A page of the signed-in dashboard: the layout gets the user, the CSRF token and the section.
pub fn signed_in(session: &AdminSession, name: &str, section: &str, ctx: Value) -> Page {
    let me = context! {
        username => session.principal.username,
        is_admin => session.principal.sees_all(),
    };
    render(name, context! { me => me, csrf => session.csrf, section => section, ..ctx })
}

pub fn error(status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    (status, render("error.html", context! { title => title, message => message, status => status.as_u16() }))
        .into_response()
}

pub fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "There is nothing here, or it belongs to someone else.")
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_compiles_and_escapes() {
        let html = super::render("error.html", minijinja::context! { title => "T", message => "<b>x</b>" }).0;
        assert!(html.contains("&lt;b&gt;x&lt;") && !html.contains("<b>"), "{html}");
        assert_eq!(super::ENV.templates().count(), super::TEMPLATES.len());
    }
}
