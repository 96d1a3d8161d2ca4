//! Connection URLs as logs and `Debug` may show them: the password in the user-info part and in
//! a `password=` query parameter (Postgres accepts both) replaced by `***`.

/// `postgres://user:***@host/db?sslmode=require&password=***`.
pub fn redact_url(url: &str) -> String {
    let redacted = match (url.find("://"), url.rfind('@')) {
        // The last '@': a password may hold an unescaped one. Over-redacting a URL whose
        // query holds an '@' is harmless in a log line.
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    };
    redact_query_passwords(&redacted)
}

fn redact_query_passwords(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if name.to_ascii_lowercase().contains("password") => {
                format!("{name}=***")
            }
            _ => pair.to_owned(),
        })
        .collect();
    format!("{base}?{}", pairs.join("&"))
}

/// A `Debug` field showing a URL redacted.
pub struct RedactedUrl<'a>(pub &'a str);

impl std::fmt::Debug for RedactedUrl<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", redact_url(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_wherever_urls_carry_them() {
        assert_eq!(
            redact_url("amqp://guest:secret@h:5672/%2f"),
            "amqp://guest:***@h:5672/%2f"
        );
        assert_eq!(redact_url("amqp://h:5672"), "amqp://h:5672");
        assert_eq!(
            redact_url("postgres://u:p@ss@db:5432/idm"),
            "postgres://u:***@db:5432/idm"
        );
        assert_eq!(
            redact_url("postgres://db/idm?user=u&password=hunter2&sslmode=require"),
            "postgres://db/idm?user=u&password=***&sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1:5432/idm"),
            "postgres://postgres@127.0.0.1:5432/idm"
        );
        assert_eq!(
            format!("{:?}", RedactedUrl("amqp://a:b@h")),
            "\"amqp://a:***@h\""
        );
    }
}
