-- Retention deletes webhook events with their deliveries, found by event.
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);
