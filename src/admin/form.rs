//! `application/x-www-form-urlencoded` bodies and query strings, decoded into name/value pairs.

use std::collections::HashMap;

#[derive(Debug, Default, Clone)]
pub struct FormData(Vec<(String, String)>);

impl FormData {
    /// `+` is a space, `%XX` a byte; malformed escapes are kept as written and bytes that are
    /// not UTF-8 become U+FFFD (`form_urlencoded`'s rules, the WHATWG URL standard's).
    pub fn parse(body: &[u8]) -> FormData {
        FormData(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
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
