//! The messages and the client of `proto/pubsub_api.proto`, generated at build time.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

tonic::include_proto!("eventbus.v1");
