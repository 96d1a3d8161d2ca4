//! Who is signed in: the session a request carries once `session::require_session` let it
//! through. Its own file so pages and the layout (`html.rs`) need not import the session
//! machinery, which itself renders with `html.rs`.

/// The logged-in user of a request (a request extension set by `session::require_session`).
#[derive(Debug, Clone)]
pub struct AdminSession {
    /// SHA-256 of the cookie token: the row's key.
    pub id: String,
    pub username: String,
    pub csrf_token: String,
}
