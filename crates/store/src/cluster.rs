//! The nodes sharing this database and their leases. A lease gives one node at a time a named
//! duty (e.g. the periodic jobs that must run once per cluster) until it expires; its epoch goes
//! up whenever the holder changes, so a node can tell that it lost the lease in between.

use sqlx::Row;

use crate::{Result, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    pub id: String,
    pub started_at: i64,
    pub heartbeat_at: i64,
    pub version: String,
    /// The node's base URL for the other nodes, if it has one.
    pub address: Option<String>,
}

/// A lease held by this node: valid until `expires_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub epoch: i64,
    pub expires_at: i64,
}

/// What a node writes on behalf of a lease it holds: the lease, the node, and the epoch it
/// was held under. A write that carries a fence is refused with [`StoreError::Fenced`] unless
/// the lease is still held by that node, under that epoch, and not expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub lease: String,
    pub holder: String,
    pub epoch: i64,
}

impl Store {
    /// Checks `fence` inside the transaction `tx` and keeps the lease from changing hands until
    /// it ends: a node taking the lease over waits for the write to commit, and sees it.
    pub(crate) async fn check_fence(
        &self,
        tx: &mut sqlx::AnyConnection,
        fence: &Fence,
        now: i64,
    ) -> Result<()> {
        let row = sqlx::query(self.sql(&format!(
            "SELECT holder, epoch, expires_at FROM leases WHERE name = ?{}",
            self.dialect.share_rows()
        )))
        .bind(&fence.lease)
        .fetch_optional(&mut *tx)
        .await?;
        let held = match row {
            Some(row) => {
                let holder: String = row.try_get("holder")?;
                let epoch: i64 = row.try_get("epoch")?;
                let expires_at: i64 = row.try_get("expires_at")?;
                holder == fence.holder && epoch == fence.epoch && expires_at > now
            }
            None => false,
        };
        if held { Ok(()) } else { Err(StoreError::Fenced { lease: fence.lease.clone() }) }
    }

    /// Records that `node` is alive at `now` (and, the first time, when it started, its version
    /// and where the other nodes reach it).
    pub async fn node_heartbeat(&self, node: &NodeRecord, now: i64) -> Result<()> {
        let mut connection = self.lease_writer().await?;
        let updated =
            sqlx::query(self.sql("UPDATE nodes SET heartbeat_at = ? WHERE id = ? AND started_at = ?"))
                .bind(now)
                .bind(&node.id)
                .bind(node.started_at)
                .execute(&mut *connection)
                .await?;
        if updated.rows_affected() > 0 {
            return Ok(());
        }
        // First beat of this run: a restarted node with the same id replaces its old row.
        let mut tx = connection.begin().await?;
        sqlx::query(self.sql("DELETE FROM nodes WHERE id = ?")).bind(&node.id).execute(&mut *tx).await?;
        sqlx::query(self.sql(
            "INSERT INTO nodes (id, started_at, heartbeat_at, version, address) VALUES (?, ?, ?, ?, ?)",
        ))
        .bind(&node.id)
        .bind(node.started_at)
        .bind(now)
        .bind(&node.version)
        .bind(&node.address)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The nodes heard from since `since`, oldest first.
    pub async fn live_nodes(&self, since: i64) -> Result<Vec<NodeRecord>> {
        let rows = sqlx::query(self.sql(
            "SELECT id, started_at, heartbeat_at, version, address FROM nodes WHERE heartbeat_at >= ? \
             ORDER BY started_at, id",
        ))
        .bind(since)
        .fetch_all(&mut *self.reader().await?)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(NodeRecord {
                    id: row.try_get("id")?,
                    started_at: row.try_get("started_at")?,
                    heartbeat_at: row.try_get("heartbeat_at")?,
                    version: row.try_get("version")?,
                    address: row.try_get("address")?,
                })
            })
            .collect()
    }

    /// A node that stops: gone from the list at once.
    pub async fn remove_node(&self, node: &str) -> Result<()> {
        sqlx::query(self.sql("DELETE FROM nodes WHERE id = ?"))
            .bind(node)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }

    /// Takes the lease `name` for `node` until `expires_at`, or renews it when `node` holds it
    /// already. `None`: another node holds it and it has not expired at `now`.
    pub async fn take_lease(
        &self,
        name: &str,
        node: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<Option<Held>> {
        let mut connection = self.lease_writer().await?;
        // The holder renews; anyone takes an expired lease, which moves it to a new epoch.
        let taken = sqlx::query(self.sql(
            "UPDATE leases SET epoch = CASE WHEN holder = ? AND expires_at > ? THEN epoch ELSE epoch + 1 END, \
             holder = ?, expires_at = ? WHERE name = ? AND (holder = ? OR expires_at <= ?)",
        ))
        .bind(node)
        .bind(now)
        .bind(node)
        .bind(expires_at)
        .bind(name)
        .bind(node)
        .bind(now)
        .execute(&mut *connection)
        .await?;
        if taken.rows_affected() == 0 {
            // Never held by anyone yet: the first insert wins, the others find it held.
            let inserted = sqlx::query(
                self.sql("INSERT INTO leases (name, holder, epoch, expires_at) VALUES (?, ?, 1, ?)"),
            )
            .bind(name)
            .bind(node)
            .bind(expires_at)
            .execute(&mut *connection)
            .await
            .map_err(StoreError::conflict_on_unique("lease"));
            match inserted {
                Ok(_) => return Ok(Some(Held { epoch: 1, expires_at })),
                Err(StoreError::Conflict { .. }) => {}
                Err(other) => return Err(other),
            }
        }
        // Read back: MySQL counts only rows it changed, and another node may have taken an
        // expired lease between the update and now.
        let row = sqlx::query(self.sql("SELECT holder, epoch, expires_at FROM leases WHERE name = ?"))
            .bind(name)
            .fetch_one(&mut *connection)
            .await?;
        let holder: String = row.try_get("holder")?;
        let until: i64 = row.try_get("expires_at")?;
        Ok((holder == node && until > now)
            .then(|| Held { epoch: row.try_get("epoch").unwrap_or_default(), expires_at: until }))
    }

    /// Renews, in two statements whatever their number, the leases of `names` that `node` holds
    /// and that have not expired at `now`: they now run until `expires_at`, under the same
    /// epoch. Returns those renewed, with their epoch; the others (expired, or taken by another
    /// node) are for [`Store::take_lease`] to settle one by one.
    pub async fn renew_leases(
        &self,
        names: &[String],
        node: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<Vec<(String, Held)>> {
        let mut renewed = Vec::with_capacity(names.len());
        let mut connection = self.lease_writer().await?;
        for chunk in names.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let mut update = sqlx::query(self.sql(&format!(
                "UPDATE leases SET expires_at = ? WHERE holder = ? AND expires_at > ? AND name IN ({marks})"
            )))
            .bind(expires_at)
            .bind(node)
            .bind(now);
            for name in chunk {
                update = update.bind(name);
            }
            update.execute(&mut *connection).await?;
            let mut read = sqlx::query(self.sql(&format!(
                "SELECT name, epoch FROM leases WHERE holder = ? AND expires_at = ? AND name IN ({marks})"
            )))
            .bind(node)
            .bind(expires_at);
            for name in chunk {
                read = read.bind(name);
            }
            for row in read.fetch_all(&mut *connection).await? {
                renewed.push((row.try_get("name")?, Held { epoch: row.try_get("epoch")?, expires_at }));
            }
        }
        Ok(renewed)
    }

    /// Gives the lease up at once (a node that stops), when `node` holds it: it ends at `now`,
    /// and its end tells other nodes how long ago it was let go.
    pub async fn release_lease(&self, name: &str, node: &str, now: i64) -> Result<()> {
        sqlx::query(
            self.sql("UPDATE leases SET expires_at = ? WHERE name = ? AND holder = ? AND expires_at > ?"),
        )
        .bind(now)
        .bind(name)
        .bind(node)
        .bind(now)
        .execute(&mut *self.lease_writer().await?)
        .await?;
        Ok(())
    }

    /// Who holds the lease `name` at `now`, if anyone.
    pub async fn lease_holder(&self, name: &str, now: i64) -> Result<Option<String>> {
        let row = sqlx::query(self.sql("SELECT holder FROM leases WHERE name = ? AND expires_at > ?"))
            .bind(name)
            .bind(now)
            .fetch_optional(&mut *self.reader().await?)
            .await?;
        Ok(row.map(|row| row.try_get("holder")).transpose()?)
    }
}

impl Store {
    /// The leases whose name starts with `prefix` and that are held at `now`: (name, holder).
    pub async fn held_leases(&self, prefix: &str, now: i64) -> Result<Vec<(String, String)>> {
        // A range rather than LIKE: the same on every database, and no wildcards to escape.
        let mut end = prefix.to_owned();
        let last = end.pop().expect("a lease prefix is not empty");
        end.push(char::from_u32(last as u32 + 1).expect("a lease prefix ends in a plain character"));
        let rows = sqlx::query(self.sql(
            "SELECT name, holder FROM leases WHERE name >= ? AND name < ? AND expires_at > ? ORDER BY name",
        ))
        .bind(prefix)
        .bind(end)
        .bind(now)
        .fetch_all(&mut *self.reader().await?)
        .await?;
        rows.iter().map(|row| Ok((row.try_get("name")?, row.try_get("holder")?))).collect()
    }
}
