//! Script results are JavaScript strings: UTF-16, where a cut such as the sample's
//! `givenName.substring(0, 8)` can split an emoji between its two surrogates. `JSON.stringify`
//! writes such a lone surrogate as a `\uD83D` escape, which is not Unicode and which serde_json
//! rightly refuses. Every script result passes through [`repair`] before it is parsed:
//!
//! - a lone surrogate at either end of a string (where a cut leaves one) is dropped, so
//!   `"a😀😀😀😀".substring(0, 8)` gives `"a😀😀😀"`: still at most 8 UTF-16 units;
//! - any other lone surrogate becomes U+FFFD, the replacement character.

use std::borrow::Cow;

/// `json` (the output of `JSON.stringify`) with its lone surrogate escapes repaired; borrowed
/// when there are none.
pub fn repair(json: &str) -> Cow<'_, str> {
    if !json.contains("\\ud") && !json.contains("\\uD") {
        return Cow::Borrowed(json);
    }
    let bytes = json.as_bytes();
    let mut out = String::with_capacity(json.len());
    let mut copied = 0;
    let mut i = 0;
    // Whether the last thing written was a string's opening quote.
    let mut at_string_start = false;
    let mut in_string = false;
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'"' => {
                in_string = !in_string;
                at_string_start = in_string;
                i += 1;
                continue;
            }
            b'\\' if in_string => {
                let Some(unit) = escaped_unit(bytes, i) else {
                    // A two-character escape (`\"`, `\\`, `\n`, …).
                    i += 2;
                    at_string_start = false;
                    continue;
                };
                match unit {
                    0xD800..=0xDBFF => {
                        if escaped_unit(bytes, i + 6).is_some_and(is_low) {
                            i += 12; // a proper pair
                        } else {
                            out.push_str(&json[copied..i]);
                            // Dropped before the closing quote, replaced anywhere else.
                            if bytes.get(i + 6) != Some(&b'"') {
                                out.push_str("\\ufffd");
                            }
                            i += 6;
                            copied = i;
                        }
                    }
                    0xDC00..=0xDFFF => {
                        out.push_str(&json[copied..i]);
                        if !at_string_start {
                            out.push_str("\\ufffd");
                        }
                        i += 6;
                        copied = i;
                    }
                    _ => i += 6,
                }
                at_string_start = false;
                continue;
            }
            _ => {}
        }
        at_string_start = false;
        i += 1;
    }
    out.push_str(&json[copied..]);
    Cow::Owned(out)
}

/// The UTF-16 unit of a `\uXXXX` escape starting at `at`.
fn escaped_unit(bytes: &[u8], at: usize) -> Option<u16> {
    match bytes.get(at..at + 6)? {
        [b'\\', b'u', hex @ ..] => {
            let text = std::str::from_utf8(hex).ok()?;
            u16::from_str_radix(text, 16).ok()
        }
        _ => None,
    }
}

fn is_low(unit: u16) -> bool {
    (0xDC00..=0xDFFF).contains(&unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(json: &str) -> serde_json::Value {
        serde_json::from_str(&repair(json)).unwrap()
    }

    #[test]
    fn a_lone_surrogate_at_the_end_of_a_cut_is_dropped() {
        // "a😀😀😀😀".substring(0, 8): 'a', three emoji, and half of the fourth.
        let cut = r#""a\ud83d\ude00\ud83d\ude00\ud83d\ude00\ud83d""#;
        assert_eq!(parsed(cut), "a😀😀😀");
        // substring(1) of an emoji: its second half starts the string.
        assert_eq!(parsed(r#""\ude00b""#), "b");
        assert_eq!(parsed(r#"{"Alias":"\ud83d","x":["\ud800"]}"#)["Alias"], "");
    }

    #[test]
    fn other_lone_surrogates_become_the_replacement_character() {
        assert_eq!(parsed(r#""a\ud83db""#), "a\u{fffd}b");
        assert_eq!(parsed(r#""a\ude00b""#), "a\u{fffd}b");
        assert_eq!(parsed(r#""\ud83d\ud83d\ude00""#), "\u{fffd}😀");
        assert_eq!(parsed(r#"{"k\ud83dx":1}"#)["k\u{fffd}x"], 1);
    }

    #[test]
    fn everything_else_is_left_alone() {
        for json in [
            r#""plain""#,
            r#""\\ud83d is text, not an escape""#,
            r#""Zoë-Ångström 山田 \u00e9 \ud83d\ude00""#,
            r#"{"a":[1,2,{"b":"\"\\\n"}]}"#,
        ] {
            assert_eq!(repair(json), json, "{json}");
        }
        assert!(matches!(repair(r#""no escapes""#), Cow::Borrowed(_)));
    }
}
