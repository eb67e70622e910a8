//! A deadline for the whole of a request's body (`body_read_timeout_secs`). A client that
//! sends its headers and then trickles the body byte by byte would otherwise hold its
//! connection (and a handler) for as long as it likes; the header timeout does not cover the
//! body. Once the deadline passes the body fails, whatever the handler then answers becomes a
//! 408 `body_timeout`, and the connection is closed.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body as AxumBody, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::error::ApiError;
use crate::http::Rest;

/// Gives the request's body its deadline; answers 408 when it passed.
pub async fn limit_body(limit: Duration, request: Request, next: impl Rest) -> Response {
    let fired = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| AxumBody::new(DeadlineBody::new(body, limit, fired.clone())));
    let response = next.answer(request).await;
    if !fired.load(Ordering::Relaxed) {
        return response;
    }
    let mut response =
        ApiError::new(StatusCode::REQUEST_TIMEOUT, "body_timeout", BodyTimedOut(limit).to_string())
            .into_response();
    // The rest of the body is still on its way: the connection cannot carry another request.
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The error a body gives once its deadline passed.
#[derive(Debug)]
struct BodyTimedOut(Duration);

impl fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the request body did not arrive within {} s", self.0.as_secs())
    }
}

impl std::error::Error for BodyTimedOut {}

/// `inner`, failing once `limit` has passed since the request's headers arrived. The timer is
/// only armed when the body is not already there: a body that comes with its headers arms none.
struct DeadlineBody<B> {
    inner: B,
    limit: Duration,
    deadline: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    /// Set once the deadline passed.
    fired: Arc<AtomicBool>,
}

impl<B> DeadlineBody<B> {
    fn new(inner: B, limit: Duration, fired: Arc<AtomicBool>) -> Self {
        DeadlineBody { inner, limit, deadline: Instant::now() + limit, timer: None, fired }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.fired.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(Box::new(BodyTimedOut(this.limit)))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
