//! `/api/openapi.json` and `/docs`, a reference page served from the binary (no CDN).

use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::openapi::ApiDoc;
use crate::app::AppState;

const DOCS_PAGE: &str = include_str!("../../assets/docs.html");

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(openapi)).route("/docs", get(docs))
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::document())
}

async fn docs() -> Response {
    let csp = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:";
    ([(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp))], Html(DOCS_PAGE)).into_response()
}
