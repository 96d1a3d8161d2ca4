//! Query answers in IDM's envelope, read and written a chunk of rows at a time, so that the
//! memory of one answer is at most [`QUERY_CHUNK_ROWS`] rows whatever `_pageSize` says (an
//! unpaged query is one page of unlimited size). An answer that fits in its first chunk is
//! built whole, with a Content-Length; a longer one streams. Should a later chunk fail, the
//! answer ends as CREST ends a partly failed query: the results so far, then an `error`.

use std::future::Future;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::error::ApiError;
use super::render;
use crate::limits::QUERY_CHUNK_ROWS;

/// Bytes gathered before they are sent on.
const FLUSH_BYTES: usize = 64 * 1024;

/// Rows of one read, rendered, and where the rows after them start when there are more.
pub(crate) struct Chunk<C> {
    pub items: Vec<Value>,
    pub next: Option<C>,
}

/// One query's rows, read in order, a chunk at a time.
pub(crate) trait ChunkReader: Send + 'static {
    /// Where a chunk ended.
    type Cursor: Send + 'static;

    /// At most `limit` rows: the query's first rows when `after` is `None`, else those after
    /// the cursor.
    fn read(
        &mut self,
        after: Option<&Self::Cursor>,
        limit: u32,
    ) -> impl Future<Output = Result<Chunk<Self::Cursor>, ApiError>> + Send;

    /// The paged-results cookie that resumes after `cursor`.
    fn cookie(&self, cursor: &Self::Cursor) -> String;

    /// The envelope's fields after `result` (CREST writes `result` first), for `count`
    /// results and the cookie of the next page, if any.
    fn trailer(&self, count: usize, cookie: Option<String>) -> Map<String, Value>;
}

/// The answer to a query of at most `page_size` results (`None`: all of them).
pub(crate) async fn answer<R: ChunkReader>(
    mut reader: R,
    page_size: Option<u64>,
    pretty: bool,
) -> Result<Response, ApiError> {
    // The first chunk is read before answering, so an error before any result is an
    // ordinary error response.
    let first = reader.read(None, chunk_limit(page_size, 0)).await?;
    let count = first.items.len();
    let page_full = page_size.is_some_and(|p| count as u64 >= p);
    if first.next.is_none() || page_full {
        let cookie = first.next.as_ref().map(|c| reader.cookie(c));
        let mut body = Map::new();
        body.insert("result".into(), Value::Array(first.items));
        body.extend(reader.trailer(count, cookie));
        return Ok(render::json(StatusCode::OK, &Value::Object(body), pretty));
    }
    let (tx, rx) = channel();
    tokio::spawn(async move {
        let mut out = String::from("{\"result\":[");
        let mut count = 0usize;
        let mut items = first.items;
        let mut cursor = first.next;
        let mut cookie = None;
        let failure = loop {
            for item in &items {
                if count > 0 {
                    out.push(',');
                }
                push_json(&mut out, item, pretty);
                count += 1;
            }
            if out.len() >= FLUSH_BYTES
                && tx
                    .send(Ok(Bytes::from(std::mem::take(&mut out))))
                    .await
                    .is_err()
            {
                return; // the client went away
            }
            let Some(at) = cursor.take() else { break None };
            let limit = chunk_limit(page_size, count);
            if limit == 0 {
                cookie = Some(reader.cookie(&at));
                break None;
            }
            match reader.read(Some(&at), limit).await {
                Ok(chunk) => {
                    items = chunk.items;
                    cursor = chunk.next;
                }
                Err(e) => break Some(e),
            }
        };
        let mut trailer = reader.trailer(count, cookie);
        if let Some(e) = failure {
            trailer.insert("error".into(), e.body());
        }
        out.push_str("],");
        let trailer = Value::Object(trailer).to_string();
        out.push_str(trailer.trim_start_matches('{'));
        let _ = tx.send(Ok(Bytes::from(out))).await;
    });
    Ok(json_body(rx))
}

/// The sending half a task writes a JSON answer's pieces to, and the receiving half
/// [`json_body`] streams; a few pieces in flight at most.
pub fn channel() -> (BodySender, BodyReceiver) {
    tokio::sync::mpsc::channel(4)
}

pub type BodySender = tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>;
pub type BodyReceiver = tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>;

/// A `200` whose JSON body is what arrives on `rx`, as it arrives.
pub fn json_body(rx: BodyReceiver) -> Response {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    response
}

/// The fields of IDM's query envelope after `result`, in CREST's order.
pub(crate) fn envelope_trailer(
    count: usize,
    cookie: Option<String>,
    policy: &str,
    total: i64,
    remaining: i64,
) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("resultCount".into(), Value::from(count));
    out.insert(
        "pagedResultsCookie".into(),
        cookie.map_or(Value::Null, Value::from),
    );
    out.insert("totalPagedResultsPolicy".into(), Value::from(policy));
    out.insert("totalPagedResults".into(), Value::from(total));
    out.insert("remainingPagedResults".into(), Value::from(remaining));
    out
}

/// Rows to read next, after `sent` of a page of `page_size`.
fn chunk_limit(page_size: Option<u64>, sent: usize) -> u32 {
    let chunk = u64::from(QUERY_CHUNK_ROWS);
    let left = page_size.map_or(chunk, |p| p.saturating_sub(sent as u64));
    // Both are at most QUERY_CHUNK_ROWS here.
    u32::try_from(left.min(chunk)).unwrap_or(QUERY_CHUNK_ROWS)
}

fn push_json(out: &mut String, value: &Value, pretty: bool) {
    let text = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    // Serialising a `Value` cannot fail (its keys are strings).
    if let Ok(text) = text {
        out.push_str(&text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_never_pass_the_page_or_the_chunk_size() {
        assert_eq!(chunk_limit(None, 0), QUERY_CHUNK_ROWS);
        assert_eq!(chunk_limit(None, 5_000), QUERY_CHUNK_ROWS);
        assert_eq!(chunk_limit(Some(10), 0), 10);
        assert_eq!(chunk_limit(Some(10), 10), 0);
        assert_eq!(chunk_limit(Some(u64::MAX), 0), QUERY_CHUNK_ROWS);
        assert_eq!(chunk_limit(Some(2_500), 2_000), 500);
    }
}
