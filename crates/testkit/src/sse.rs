//! A minimal Server-Sent Events reader over a streaming HTTP response.

use std::pin::Pin;
use std::time::Duration;

use futures::StreamExt;
use reqwest::Response;
use serde_json::Value;
use tokio::time::Instant;

/// How long [`Sse::next`] waits for the next chunk before calling the stream finished.
const IDLE_LIMIT: Duration = Duration::from_secs(10);

/// Reads `event:`/`data:` blocks; blocks without data (comments, keep-alives) are skipped.
pub struct Sse {
    stream: Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl Sse {
    pub fn new(response: Response) -> Sse {
        Sse { stream: Box::pin(response.bytes_stream()), buffer: String::new() }
    }

    /// The next event as (name, data); `None` once the stream ends, fails or stays idle for
    /// ten seconds.
    pub async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(event) = self.take_event() {
                return Some(event);
            }
            let chunk = tokio::time::timeout(IDLE_LIMIT, self.stream.next()).await.ok()??.ok()?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next event, which must arrive within `within`.
    pub async fn next_within(&mut self, within: Duration) -> (String, Value) {
        self.next_before(Instant::now() + within).await
    }

    async fn next_before(&mut self, deadline: Instant) -> (String, Value) {
        loop {
            if let Some(event) = self.take_event() {
                return event;
            }
            let chunk = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("an event in time")
                .expect("the stream is open")
                .unwrap();
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Skips events until one named `name` arrives.
    pub async fn until(&mut self, name: &str) -> Value {
        loop {
            let (event, data) = self.next().await.unwrap_or_else(|| panic!("stream ended before `{name}`"));
            if event == name {
                return data;
            }
        }
    }

    /// Skips events until a `status` event with this status.
    pub async fn until_status(&mut self, status: &str) -> Value {
        loop {
            let data = self.until("status").await;
            if data["status"] == status {
                return data;
            }
        }
    }

    /// Every event until one matches, all within `within`; returns them all, the match last.
    pub async fn collect_until(
        &mut self,
        within: Duration,
        matches: impl Fn(&str, &Value) -> bool,
    ) -> Vec<(String, Value)> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let (name, data) = self.next_before(deadline).await;
            let done = matches(&name, &data);
            seen.push((name, data));
            if done {
                return seen;
            }
        }
    }

    /// Removes the first complete block with data from the buffer and parses it.
    fn take_event(&mut self) -> Option<(String, Value)> {
        while let Some(end) = self.buffer.find("\n\n") {
            let block: String = self.buffer.drain(..end + 2).collect();
            let mut name = String::from("message");
            let mut data = String::new();
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    name = value.trim().to_owned();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push_str(value.trim());
                }
            }
            if !data.is_empty() {
                return Some((name, serde_json::from_str(&data).unwrap()));
            }
        }
        None
    }
}
