//! The Pub/Sub API client: Change Data Capture events over gRPC (HTTP/2, TLS), their Avro
//! payloads decoded with the schema each event names.
//!
//! | file | responsibility |
//! |---|---|
//! | `proto.rs` | the messages and client generated from `proto/pubsub_api.proto` |
//! | `connection.rs` | [`PubSub`]: the connection, authentication metadata, topics, schemas |
//! | `subscription.rs` | `Subscribe` with flow control, [`Replay`] |
//! | `event.rs` | [`ChangeEvent`]: header, fields, bitmap fields, decoded from Avro |
//! | `bitmap.rs` | `changedFields`/`nulledFields`/`diffFields` to field names |
//! | `errors.rs` | [`PubSubError`], classified for retry, resubscribe or stop |

mod bitmap;
mod connection;
mod errors;
mod event;
pub mod proto;
mod subscription;

pub use bitmap::FieldPositions;
pub use connection::{DEFAULT_ENDPOINT, PubSub};
pub use errors::PubSubError;
pub use event::{ChangeEvent, ChangeEventHeader, ChangeType, EventSchema};
pub use subscription::{MAX_BATCH, Received, Replay, Subscription};
