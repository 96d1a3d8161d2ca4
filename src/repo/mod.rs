//! Postgres storage: managed objects, the outbox, queries compiled from filters, links,
//! recon runs and the recon audit, the Salesforce connector's stored tokens.
//!
//! Recon and the worker look a page of ids up (`key = ANY($ids)`) in a transaction opened by
//! [`begin_lookups`]: no sequential scan, and each statement planned for its own arguments
//! and the statistics of the moment. Otherwise the planner weighs 2,000 probes against one
//! sequential scan and, for a table of 100,000 rows with fresh statistics, takes the scan (19
//! ms a page where the probes take 5, measured); and a plan cached while a first recon's
//! tables were still empty probed `links` through the wrong index (`links_second`, with
//! `first_id` as a filter): a scan per id, 24 s for 100,000 users instead of 4. Recon also
//! refreshes the statistics early and often while it fills the tables (`recon::run`).

pub mod admin_oauth_pending;
pub mod admin_sessions;
pub mod audit;
pub mod audit_retention;
pub mod db;
pub mod event_subscriptions;
pub mod filter_sql;
pub mod links;
pub mod managed;
pub mod outbox;
pub mod query;
pub mod recon_runs;
pub mod relation_query;
pub mod salesforce_connector;
pub mod salesforce_store;
pub mod salesforce_tokens;
pub mod schedule_firings;
pub mod sync_audit;
pub mod sync_failures;
pub mod sync_tokens;
pub mod transaction;
pub mod workers;

/// The database handle services hold: the role's pool of connections. Code outside `repo`
/// names these aliases, never `sqlx`, so the storage adapter stays the one place that speaks SQL.
pub type Pool = sqlx::PgPool;
/// One connection, as a transaction dereferences to: what repo functions that must run inside
/// a caller's transaction take.
pub type Conn = sqlx::PgConnection;
/// A transaction a service opens with [`begin`] and hands to repo functions.
pub type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

/// A new row or object id: a UUID, time-ordered (version 7), so that rows written together
/// land side by side at the end of their primary-key index rather than on random pages (a
/// first recon inserts a hundred thousand at a time).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A transaction for page look-ups by id (see the notes above): no sequential scan, and each
/// statement planned for its own arguments and the statistics of the moment.
pub async fn begin_lookups(pool: &Pool) -> Result<Tx, RepoError> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "SELECT set_config('enable_seqscan', 'off', true),
                set_config('plan_cache_mode', 'force_custom_plan', true)",
    )
    .execute(&mut *tx)
    .await?;
    Ok(tx)
}

/// Opens a transaction on the pool.
pub async fn begin(pool: &Pool) -> Result<Tx, RepoError> {
    Ok(pool.begin().await?)
}

/// Commits a transaction opened with [`begin`].
pub async fn commit(tx: Tx) -> Result<(), RepoError> {
    Ok(tx.commit().await?)
}

/// Rolls back a transaction opened with [`begin`].
pub async fn rollback(tx: Tx) -> Result<(), RepoError> {
    Ok(tx.rollback().await?)
}

/// Errors at the storage boundary.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{0}")]
    Config(String),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// Postgres ended a statement at a time limit of this role: `statement_timeout` (or an
    /// operator's cancel, which shares its code), or the session at
    /// `idle_in_transaction_session_timeout`.
    #[error("the database stopped a statement at its time limit ({limit})")]
    Timeout {
        limit: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("unique constraint {constraint} violated")]
    Unique { constraint: String },
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for RepoError {
    fn from(e: sqlx::Error) -> Self {
        let limit = match &e {
            sqlx::Error::Database(db) => match db.code().as_deref() {
                Some("57014") => Some("statement_timeout"),
                Some("25P03") => Some("idle_in_transaction_session_timeout"),
                _ => None,
            },
            _ => None,
        };
        match limit {
            Some(limit) => RepoError::Timeout { limit, source: e },
            None => RepoError::Database(e),
        }
    }
}

impl RepoError {
    /// Maps a unique-constraint violation to [`RepoError::Unique`], naming the constraint.
    pub(crate) fn from_write(e: sqlx::Error) -> RepoError {
        if let sqlx::Error::Database(db) = &e {
            if db.code().as_deref() == Some("23505") {
                if let Some(constraint) = db.constraint() {
                    return RepoError::Unique {
                        constraint: constraint.to_owned(),
                    };
                }
            }
        }
        RepoError::from(e)
    }

    /// Whether Postgres itself is out of reach (down, restarting, database gone), as opposed
    /// to a fault of the request: answered 503 rather than 500.
    pub fn is_unavailable(&self) -> bool {
        match self {
            RepoError::Database(
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Tls(_),
            ) => true,
            // Class 08 is "connection exception"; 57P0x are shutdowns; 3D000 a missing database.
            RepoError::Database(sqlx::Error::Database(db)) => db
                .code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57P0") || c == "3D000"),
            _ => false,
        }
    }

    /// Whether the error is worth retrying (serialization failure, deadlock, lost connection).
    pub fn is_transient(&self) -> bool {
        match self {
            RepoError::Database(sqlx::Error::Database(db)) => {
                matches!(db.code().as_deref(), Some("40001") | Some("40P01"))
            }
            RepoError::Database(sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut) => true,
            _ => false,
        }
    }
}
