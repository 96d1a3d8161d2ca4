//! `application/x-www-form-urlencoded` bodies and query strings, decoded into name/value pairs.

use std::collections::HashMap;

#[derive(Debug, Default, Clone)]
pub struct FormData(Vec<(String, String)>);

impl FormData {
    pub fn parse(body: &[u8]) -> FormData {
        let text = String::from_utf8_lossy(body);
        FormData(
            text.split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (decode(k), decode(v))
                })
                .collect(),
        )
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name` (a group of checkboxes), in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of `name`, trimmed; empty when absent.
    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().trim().to_owned()
    }

    /// The first field whose name or value holds U+0000, which PostgreSQL cannot store.
    pub fn field_with_nul(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k.contains('\0') || v.contains('\0'))
            .map(|(k, _)| k.as_str())
    }

    pub fn to_map(&self) -> HashMap<String, String> {
        self.0.iter().cloned().collect()
    }
}

/// Decodes `+` and `%XX`; malformed escapes are kept as written.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let digit = |at: usize| bytes.get(at).copied().and_then(hex);
        match byte {
            b'+' => out.push(b' '),
            b'%' => match (digit(i + 1), digit(i + 2)) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_pairs() {
        let f = FormData::parse(b"a=1&b=x+y%21&c=%C3%A9&d&e=%zz&f=%4&g=%\xc3\xa9");
        assert_eq!(f.get("a"), Some("1"));
        assert_eq!(f.get("b"), Some("x y!"));
        assert_eq!(f.get("c"), Some("é"));
        assert_eq!(f.get("d"), Some(""));
        assert_eq!(f.get("e"), Some("%zz"));
        assert_eq!(f.get("f"), Some("%4"));
        assert_eq!(f.get("g"), Some("%é"));
        assert_eq!(f.get("h"), None);
        assert_eq!(f.text("b"), "x y!");
    }
}
