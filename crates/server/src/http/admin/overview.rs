//! The overview (`/admin`, also seed 004's `/admin/status`) and its live stream.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use minijinja::context;
use serde_json::{Value, json};
use wagate_store::StoreError;

use super::auth::{AdminSession, with_session};
use super::page;
use crate::app::AppState;
use wagate_service::auth::Principal;
use wagate_service::time::now_ms;

const HOUR: i64 = 3_600_000;
const LIVE_EVERY: Duration = Duration::from_secs(2);

/// Everything the overview shows, as JSON (the live stream sends the same).
async fn stats(state: &AppState, principal: &Principal) -> Result<Value, StoreError> {
    let figures = state.analytics.figures(principal).await?;
    let sessions = &figures.sessions;
    let mut by_status: BTreeMap<String, i64> = BTreeMap::new();
    for session in sessions {
        *by_status.entry(session.status.to_string()).or_default() += 1;
    }
    let statuses: BTreeMap<String, String> =
        sessions.iter().map(|s| (s.id.to_string(), s.status.to_string())).collect();
    let mut messages: BTreeMap<String, i64> =
        ["queued", "sending", "sent", "delivered", "read", "failed", "canceled"]
            .map(|s| (s.to_owned(), 0))
            .into();
    for (status, n) in figures.messages {
        messages.insert(status, n);
    }
    let mut otp: BTreeMap<String, i64> =
        ["pending", "approved", "failed", "expired", "canceled", "max_attempts"]
            .map(|s| (s.to_owned(), 0))
            .into();
    let mut otp_total = 0;
    for (status, n) in figures.otp {
        otp.insert(status.to_string(), n);
        otp_total += n;
    }
    let per_hour = &figures.per_hour;
    let last_hour = per_hour.iter().filter(|(hour, _)| *hour >= now_ms() - HOUR).map(|(_, n)| n).sum::<i64>();
    Ok(json!({
        "sessions": by_status,
        "session_count": sessions.len(),
        "statuses": statuses,
        "messages": messages,
        "queue": messages["queued"] + messages["sending"],
        "last_hour": last_hour,
        "otp": otp,
        "otp_sent": otp_total,
        "webhook_dead": figures.dead_webhooks,
        "chart": chart(per_hour),
    }))
}

/// Messages per hour over the last 24 hours, as an SVG bar chart.
fn chart(per_hour: &[(i64, i64)]) -> String {
    let this_hour = now_ms() - now_ms() % HOUR;
    let counts: Vec<i64> = (0..24)
        .map(|n| {
            let hour = this_hour - (23 - n) * HOUR;
            per_hour.iter().find(|(h, _)| *h == hour).map_or(0, |(_, c)| *c)
        })
        .collect();
    let max = counts.iter().copied().max().unwrap_or(0).max(1);
    let bars: String = counts
        .iter()
        .enumerate()
        .map(|(n, count)| {
            let height = (*count as f64 / max as f64 * 100.0).round();
            format!(
                r#"<rect x="{x}" y="{y}" width="16" height="{height}" rx="2"><title>{count} messages</title></rect>"#,
                x = n * 20 + 2,
                y = 110.0 - height,
            )
        })
        .collect();
    format!(
        r#"<svg class="chart" viewBox="0 0 480 120" role="img" aria-label="Messages per hour, last 24 hours (peak {max})">{bars}<line x1="0" y1="110.5" x2="480" y2="110.5"/></svg>"#
    )
}

pub async fn overview(State(state): State<AppState>, session: AdminSession) -> Response {
    match stats(&state, &session.principal).await {
        Ok(stats) => with_session(
            &session,
            page::signed_in(
                &session,
                "overview.html",
                "overview",
                context! { title => "Overview", stats => stats },
            ),
        ),
        Err(err) => {
            tracing::error!(error = %err, "cannot read the overview");
            page::error(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "The database did not answer; try again.",
            )
        }
    }
}

/// The overview's figures every two seconds (`overview` events).
pub async fn live(
    State(state): State<AppState>,
    session: AdminSession,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let principal = session.principal;
    let mut shutdown = state.shutdown.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(4);
    tokio::spawn(async move {
        loop {
            if let Ok(stats) = stats(&state, &principal).await
                && tx.send(Event::default().event("overview").data(stats.to_string())).await.is_err()
            {
                return; // the page was closed
            }
            tokio::select! {
                () = tokio::time::sleep(LIVE_EVERY) => {}
                _ = shutdown.changed() => return,
            }
        }
    });
    let stream = futures::StreamExt::map(tokio_stream::wrappers::ReceiverStream::new(rx), Ok);
    Sse::new(stream).keep_alive(KeepAlive::new().interval(crate::http::KEEP_ALIVE))
}
