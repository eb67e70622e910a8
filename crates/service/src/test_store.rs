//! Tests only: a migrated store on a given database, kept alive by the returned guards.

use wagate_store::Store;
use wagate_testkit::{DatabaseKind, TestDatabase};

pub(crate) async fn store_on(kind: DatabaseKind) -> (Store, Option<TestDatabase>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(kind).await;
    let url = database.as_ref().map_or_else(|| Store::sqlite_url(dir.path()), |db| db.url().to_owned());
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    (store, database, dir)
}
