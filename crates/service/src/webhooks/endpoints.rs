//! Managing webhook endpoints: create, change, delete, list them, read their delivery log and
//! queue events again. Every change refreshes the cached endpoint list.

use wagate_core::SessionId;
use wagate_store::{AttemptRecord, DeliveryRecord, NewWebhook, WebhookRecord};

use super::{WebhookError, Webhooks};
use crate::auth::Principal;

/// A new endpoint, as the caller asked for it.
#[derive(Debug)]
pub struct NewEndpoint<'a> {
    pub owner_id: &'a str,
    /// The one session it listens to; `None`: all of the owner's sessions.
    pub session_id: Option<&'a SessionId>,
    pub url: &'a str,
    /// Default: every event (`["*"]`).
    pub events: Option<Vec<String>>,
    pub enabled: bool,
}

/// Changes to an endpoint; `None` keeps the current value.
#[derive(Debug, Default)]
pub struct EndpointChange {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

/// Which events to send to an endpoint again.
#[derive(Debug)]
pub enum Replay {
    /// One event of the endpoint's owner.
    Event(String),
    /// Every event sent to the endpoint in `[since, until)` (unix milliseconds).
    Window { since: i64, until: i64 },
    /// The endpoint's dead letters (the latest 200).
    DeadLetters,
}

/// A delivery with every attempt made for it.
#[derive(Debug)]
pub struct DeliveryLog {
    pub delivery: DeliveryRecord,
    pub attempts: Vec<AttemptRecord>,
}

fn check_not_empty(events: &[String]) -> Result<(), WebhookError> {
    if events.is_empty() { Err(WebhookError::EmptyEvents) } else { Ok(()) }
}

impl Webhooks {
    /// The endpoint if the caller may see it; [`WebhookError::NotFound`] otherwise, so ids of
    /// other tenants do not leak.
    pub async fn endpoint(&self, principal: &Principal, id: &str) -> Result<WebhookRecord, WebhookError> {
        let webhook = self.store.webhook(id).await?.ok_or(WebhookError::NotFound)?;
        if principal.may_access(&webhook.owner_id, webhook.session_id.as_ref().map(SessionId::as_str)) {
            Ok(webhook)
        } else {
            Err(WebhookError::NotFound)
        }
    }

    /// The endpoints the caller may see.
    pub async fn endpoints_of(&self, principal: &Principal) -> Result<Vec<WebhookRecord>, WebhookError> {
        let mut all = self.store.webhooks(principal.owner_filter()).await?;
        all.retain(|w| principal.may_access(&w.owner_id, w.session_id.as_ref().map(SessionId::as_str)));
        Ok(all)
    }

    /// The endpoints the caller may see, each with its `recent` latest deliveries (none when
    /// they cannot be read: an overview shows what it can).
    pub async fn endpoints_with_recent_deliveries(
        &self,
        principal: &Principal,
        recent: u32,
    ) -> Result<Vec<(WebhookRecord, Vec<DeliveryRecord>)>, WebhookError> {
        let endpoints = self.endpoints_of(principal).await?;
        let mut rows = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            let deliveries =
                self.store.webhook_deliveries(&endpoint.id, None, recent).await.unwrap_or_default();
            rows.push((endpoint, deliveries));
        }
        Ok(rows)
    }

    /// Creates an endpoint; returns its signing secret in clear (stored sealed) with it.
    pub async fn create_endpoint(
        &self,
        new: NewEndpoint<'_>,
    ) -> Result<(String, WebhookRecord), WebhookError> {
        let events = new.events.unwrap_or_else(|| vec!["*".into()]);
        check_not_empty(&events)?;
        Self::check_events(&events)?;
        self.check_url(new.url).await?;
        let secret = Self::generate_secret();
        let mut record = self
            .store
            .insert_webhook(NewWebhook {
                owner_id: new.owner_id,
                session_id: new.session_id,
                url: new.url,
                events: &events,
                secret: &self.seal_secret(&secret),
                from_session_url: false,
            })
            .await?;
        if !new.enabled {
            self.store.update_webhook(&record.id, &record.url, &record.events, false).await?;
            record.enabled = false;
        }
        self.invalidate();
        Ok((secret, record))
    }

    /// Applies `change` to the endpoint and returns it as stored now.
    pub async fn update_endpoint(
        &self,
        webhook: &WebhookRecord,
        change: EndpointChange,
    ) -> Result<WebhookRecord, WebhookError> {
        let url = change.url.unwrap_or_else(|| webhook.url.clone());
        self.check_url(&url).await?;
        let events = change.events.unwrap_or_else(|| webhook.events.clone());
        check_not_empty(&events)?;
        Self::check_events(&events)?;
        let enabled = change.enabled.unwrap_or(webhook.enabled);
        self.store.update_webhook(&webhook.id, &url, &events, enabled).await?;
        self.invalidate();
        self.wake();
        self.store.webhook(&webhook.id).await?.ok_or(WebhookError::NotFound)
    }

    /// Deletes the endpoint and its pending deliveries.
    pub async fn delete_endpoint(&self, webhook: &WebhookRecord) -> Result<(), WebhookError> {
        self.store.delete_webhook(&webhook.id).await?;
        self.invalidate();
        Ok(())
    }

    /// The endpoint's latest deliveries, newest first, optionally of one status (`pending`,
    /// `delivered` or `dead`).
    pub async fn deliveries(
        &self,
        webhook: &WebhookRecord,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, WebhookError> {
        if let Some(status) = status
            && !["pending", "delivered", "dead"].contains(&status)
        {
            return Err(WebhookError::UnknownDeliveryStatus);
        }
        Ok(self.store.webhook_deliveries(&webhook.id, status, limit).await?)
    }

    /// [`Self::deliveries`] with every attempt of each.
    pub async fn delivery_log(
        &self,
        webhook: &WebhookRecord,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeliveryLog>, WebhookError> {
        let records = self.deliveries(webhook, status, limit).await?;
        let mut log = Vec::with_capacity(records.len());
        for delivery in records {
            let attempts = self.store.webhook_attempts(&delivery.id).await?;
            log.push(DeliveryLog { delivery, attempts });
        }
        Ok(log)
    }

    /// Queues events for the endpoint again, as new deliveries in their original order, and
    /// returns how many.
    pub async fn replay(&self, webhook: &WebhookRecord, which: Replay) -> Result<usize, WebhookError> {
        let events = match which {
            Replay::Event(event_id) => match self.store.webhook_event(&event_id).await? {
                Some(event) if event.owner_id == webhook.owner_id => vec![event.id],
                _ => return Err(WebhookError::EventNotFound(event_id)),
            },
            Replay::Window { since, until } => {
                self.store.webhook_event_ids(&webhook.id, since, until).await?
            }
            Replay::DeadLetters => {
                let dead = self.store.webhook_deliveries(&webhook.id, Some("dead"), 200).await?;
                dead.into_iter().map(|d| d.event_id).collect()
            }
        };
        let queued = self.store.replay_webhook_events(&webhook.id, &events, self.next_seq()).await?;
        self.wake();
        Ok(queued)
    }
}
