//! The Admin UI over real HTTP: a browser's requests, cookie handled by hand, redirects not
//! followed automatically so every hop is checked.

mod connectors;
mod dashboard;
mod login;
mod mappings;
pub mod support;
mod users;
