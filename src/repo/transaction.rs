//! Transactions beyond [`super::begin`] and [`super::commit`]: transactions on a borrowed
//! connection (a savepoint inside a caller's transaction, so one
//! object's failure undoes only its own writes; or a transaction on a connection held outside
//! the pool).

use std::ops::{Deref, DerefMut};

use super::{Conn, RepoError};

/// A transaction on a borrowed connection: a savepoint when the connection is already in a
/// transaction. Dropped without [`Transaction::commit`], it rolls back.
pub struct Transaction<'c>(sqlx::Transaction<'c, sqlx::Postgres>);

/// Starts a transaction on `conn`: `SAVEPOINT` inside a transaction, else `BEGIN`.
pub async fn begin(conn: &mut Conn) -> Result<Transaction<'_>, RepoError> {
    Ok(Transaction(sqlx::Connection::begin(conn).await?))
}

impl Transaction<'_> {
    pub async fn commit(self) -> Result<(), RepoError> {
        Ok(self.0.commit().await?)
    }

    pub async fn rollback(self) -> Result<(), RepoError> {
        Ok(self.0.rollback().await?)
    }
}

impl Deref for Transaction<'_> {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        &self.0
    }
}

impl DerefMut for Transaction<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.0
    }
}
