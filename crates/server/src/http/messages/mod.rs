//! `/api/v1/…/messages`: accept messages into the outbox, follow them, retry or cancel them.

mod body;
mod queries;
mod request;
mod send;
mod view;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub use body::SendBody;
pub use queries::*;
pub use request::*;
pub use send::*;
pub use view::{MessageView, StatusChange};

use crate::app::AppState;

pub fn routes() -> Router<AppState> {
    // Sending takes uploads up to the media limit: the body extractor enforces its own limits.
    Router::new()
        .route("/sessions/{id}/messages", post(send_from_session).layer(DefaultBodyLimit::disable()))
        .route("/messages", get(list).post(send).layer(DefaultBodyLimit::disable()))
        .route("/messages/{id}", get(show).delete(cancel))
        .route("/messages/{id}/retry", post(retry))
}
