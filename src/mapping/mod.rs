//! The mapping engine (placeholder while it is assembled).
pub mod script;
