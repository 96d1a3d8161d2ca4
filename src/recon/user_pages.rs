//! The pages of a run's users query, each with the grants its mapping reads
//! (`salesforce::access_read`), fetched one at a time and timed.
//!
//! Salesforce counts a parent-to-child subquery's rows toward a page's batch size, so a page of
//! users holding three assignments each carries about a quarter of the users a page without
//! them does. Memberships are read per page by id range; done per Salesforce page, that range
//! query would then cost one call per few hundred users. Pages are therefore gathered up to the
//! run's batch size in users before their memberships are read: one membership query per
//! batch of users however many assignments ride along, and still at most one batch in memory.

use std::time::{Duration, Instant};

use futures_util::{Stream, TryStreamExt};

use super::soql::UserSoql;
use crate::salesforce::access_read::ReadState;
use crate::salesforce::{QueryPage, SalesforceClient, SalesforceError};

pub(crate) struct UserPages<S> {
    stream: S,
    client: SalesforceClient,
    soql: UserSoql,
    /// Users a gathered page holds at most (the run's batch size).
    gather: usize,
    read_state: ReadState,
    /// The stream is not polled again once it has ended.
    ended: bool,
}

impl<S> UserPages<S>
where
    S: Stream<Item = Result<QueryPage, SalesforceError>> + Unpin,
{
    pub fn new(
        stream: S,
        client: SalesforceClient,
        soql: UserSoql,
        gather: u32,
        read_state: ReadState,
    ) -> Self {
        UserPages {
            stream,
            client,
            soql,
            gather: gather as usize,
            read_state,
            ended: false,
        }
    }

    /// The next page with its grants, and how long it took.
    pub async fn next(&mut self) -> (Result<Option<QueryPage>, SalesforceError>, Duration) {
        let t = Instant::now();
        let page = self.read().await;
        self.ended = !matches!(page, Ok(Some(_)));
        (page, t.elapsed())
    }

    async fn read(&mut self) -> Result<Option<QueryPage>, SalesforceError> {
        if self.ended {
            return Ok(None);
        }
        let Some(mut page) = self.stream.try_next().await? else {
            return Ok(None);
        };
        let access = self.soql.access;
        if access.memberships && self.soql.ranged {
            while page.records.len() < self.gather && !page.done {
                let Some(more) = self.stream.try_next().await? else {
                    break;
                };
                page.records.extend(more.records);
                page.done = more.done;
                page.total_size = more.total_size;
            }
        }
        if access.any() {
            self.client
                .complete_access(
                    &mut page.records,
                    access,
                    &mut self.read_state,
                    self.soql.ranged,
                )
                .await?;
        }
        Ok(Some(page))
    }

    /// What reading the grants learned (the run reads users by id afterwards too).
    pub fn into_read_state(self) -> ReadState {
        self.read_state
    }
}
