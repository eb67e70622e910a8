//! Wake-ups between the nodes of a cluster. On PostgreSQL a node that queued work for a session
//! tells the others with `NOTIFY`, and every node listens, so the node that runs the session
//! starts at once. Other databases cannot tell: their nodes look for such work regularly.

use sqlx::postgres::PgListener;

use crate::{Dialect, Result, Store};

/// The channel of "this session has new work" (the payload is the session's id).
const WORK_CHANNEL: &str = "wagate_work";

impl Store {
    /// Tells the other nodes that work was queued for `session` (a no-op where the database
    /// cannot carry it).
    pub async fn announce_work(&self, session: &str) -> Result<()> {
        if self.dialect != Dialect::Postgres {
            return Ok(());
        }
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(WORK_CHANNEL)
            .bind(session)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }

    /// Listens for the work other nodes announce; `None` where the database cannot carry it.
    pub async fn listen_for_work(&self) -> Result<Option<WorkListener>> {
        let Some(url) = self.url.as_deref().filter(|_| self.dialect == Dialect::Postgres) else {
            return Ok(None);
        };
        let mut listener = PgListener::connect(url).await?;
        listener.listen(WORK_CHANNEL).await?;
        Ok(Some(WorkListener(listener)))
    }
}

/// Announcements of work, as they come.
pub struct WorkListener(PgListener);

impl WorkListener {
    /// The session of the next announcement. A lost connection is opened again by the next
    /// call; what was announced in between is not seen (the nodes' regular look finds it).
    pub async fn next(&mut self) -> Result<String> {
        Ok(self.0.recv().await?.payload().to_owned())
    }
}
