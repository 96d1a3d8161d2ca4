//! Issue 13: hostile and careless input. Each rule asserts the answer and that the process
//! keeps serving.

mod credentials;
mod http_limits;
mod input;
mod paging;
