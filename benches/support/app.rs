//! The serve role's application over the shipped `conf/` and a fresh database, for the
//! benchmarks that drive the product end to end (included by each with `#[path]`).

use std::path::Path;

use idm_sync::app::{Application, ServeSettings};
use idm_sync::repo::db::DbSettings;
use idm_sync::secrets::{KEY_LEN, KeySource};
use sqlx::Connection;

/// Drops database `db` on `server` and builds the serve application over it (migrated at
/// start), its Salesforce secrets sealed with `key`.
pub async fn fresh_app(server: &str, db: &str, key: [u8; KEY_LEN]) -> Application {
    let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    Application::build(&ServeSettings {
        conf_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("conf"),
        listen: "127.0.0.1:0".into(),
        database: DbSettings {
            secrets: KeySource::Key(key),
            ..DbSettings::new(format!("{server}/{db}"))
        },
        broker: None,
    })
    .await
    .unwrap()
}
