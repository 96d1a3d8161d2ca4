//! Paged-results cookies that only this deployment can issue: the payload (where the last page
//! ended) travels base64url-encoded with an HMAC-SHA256 tag under a key derived from the
//! secrets key, so every replica accepts every other's cookies and a client cannot forge
//! keyset values. The payload is not secret: it holds the last row's sort values and id, which
//! the client has just been sent.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;

use crate::secrets::Sealer;

/// Bytes of the tag kept: 128 bits leave nothing to guess.
const TAG_LEN: usize = 16;

#[derive(Clone)]
pub struct PagingCookies {
    key: hmac::Key,
}

impl std::fmt::Debug for PagingCookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PagingCookies(..)")
    }
}

impl PagingCookies {
    pub fn new(sealer: &Sealer) -> PagingCookies {
        PagingCookies {
            key: sealer.mac_key("paging-cookie"),
        }
    }

    /// `payload` with its tag: `<base64url payload>.<base64url tag>`.
    pub fn issue(&self, payload: &[u8]) -> String {
        let tag = hmac::sign(&self.key, payload);
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(truncated(tag.as_ref()))
        )
    }

    /// The payload of a cookie this deployment issued; `None` for anything else.
    pub fn open(&self, cookie: &str) -> Option<Vec<u8>> {
        let (payload, tag) = cookie.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        if tag.len() != TAG_LEN {
            return None;
        }
        // Constant time: the comparison must not tell how much of a forged tag was right.
        let expected = hmac::sign(&self.key, &payload);
        let same: bool =
            subtle::ConstantTimeEq::ct_eq(truncated(expected.as_ref()), tag.as_slice()).into();
        same.then_some(payload)
    }
}

/// The first [`TAG_LEN`] bytes of an HMAC-SHA256 tag (which has 32).
fn truncated(tag: &[u8]) -> &[u8] {
    tag.get(..TAG_LEN).unwrap_or(tag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::KEY_LEN;

    fn cookies(key: u8) -> PagingCookies {
        PagingCookies::new(&Sealer::new(&[key; KEY_LEN]).unwrap())
    }

    #[test]
    fn issued_cookies_open_on_every_replica_and_forgeries_do_not() {
        let c = cookies(1).issue(br#"{"v":["a"],"i":"x"}"#);
        assert_eq!(cookies(1).open(&c).unwrap(), br#"{"v":["a"],"i":"x"}"#);
        assert_eq!(cookies(2).open(&c), None, "another deployment's key");
        let (_, tag) = c.split_once('.').unwrap();
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(br#"{"v":[1],"i":"x"}"#));
        assert_eq!(cookies(1).open(&forged), None);
        assert_eq!(
            cookies(1).open("e30"),
            None,
            "an unsigned cookie of earlier versions"
        );
        assert_eq!(cookies(1).open(""), None);
        assert_eq!(cookies(1).open("..."), None);
    }
}
