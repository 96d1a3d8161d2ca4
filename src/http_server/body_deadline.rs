//! A deadline for a whole request body. tower-http's `TimeoutBody` restarts its timer at every
//! frame, so a client trickling one byte just inside the limit would never be cut off; this
//! wrapper has one deadline, set when the handler first reads, and never moved.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

/// The body's error once the deadline has passed.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimedOut(pub Duration);

/// Tells the server, after the handler answered, that the body ran out of time (the handler
/// saw only a read error and may have answered 400).
#[derive(Debug, Clone, Default)]
pub struct Expired(Arc<AtomicBool>);

impl Expired {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// `inner`, failing with [`BodyTimedOut`] when it has not ended `limit` after the first read.
pub struct DeadlineBody<B> {
    inner: B,
    limit: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
    expired: Expired,
}

impl<B> DeadlineBody<B> {
    pub fn new(inner: B, limit: Duration, expired: Expired) -> Self {
        DeadlineBody {
            inner,
            limit,
            deadline: None,
            expired,
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.expired.is_set() {
            return Poll::Ready(Some(Err(BodyTimedOut(this.limit).into())));
        }
        let limit = this.limit;
        let deadline = this
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        // What has arrived is delivered even at the deadline: only waiting is refused.
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.expired.set();
                Poll::Ready(Some(Err(BodyTimedOut(limit).into())))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body as AxumBody;

    /// A body that yields one byte every `gap`, `n` times.
    fn trickle(n: usize, gap: Duration) -> AxumBody {
        let frames = futures_util::stream::unfold(0, move |i| async move {
            if i == n {
                return None;
            }
            tokio::time::sleep(gap).await;
            Some((Ok::<_, std::io::Error>(Bytes::from_static(b"x")), i + 1))
        });
        AxumBody::from_stream(frames)
    }

    async fn read(body: DeadlineBody<AxumBody>) -> Result<Bytes, BoxError> {
        axum::body::to_bytes(AxumBody::new(body), usize::MAX)
            .await
            .map_err(|e| e.into_inner())
    }

    #[tokio::test]
    async fn a_trickle_is_cut_off_at_the_deadline_not_per_frame() {
        let expired = Expired::default();
        let limit = Duration::from_millis(300);
        let body = DeadlineBody::new(
            trickle(100, Duration::from_millis(50)),
            limit,
            expired.clone(),
        );
        let started = std::time::Instant::now();
        let err = read(body).await.unwrap_err();
        assert!(err.to_string().contains("did not arrive within"), "{err}");
        assert!(expired.is_set());
        assert!(started.elapsed() < limit * 3, "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_body_in_time_passes_whole() {
        let expired = Expired::default();
        let body = DeadlineBody::new(
            trickle(3, Duration::from_millis(20)),
            Duration::from_secs(5),
            expired.clone(),
        );
        assert_eq!(&read(body).await.unwrap()[..], b"xxx");
        assert!(!expired.is_set());
    }
}
