//! The `_queryFilter` parser: a tokenizer, then recursive descent over
//!
//! ```text
//! Expr    := Or
//! Or      := And ('or' And)*
//! And     := Not ('and' Not)*
//! Not     := ('!' | 'not')* Primary
//! Primary := '(' Expr ')' | Pointer Op Value | Pointer 'pr' | 'true' | 'false'
//! Value   := "string" | 'string' | number | true | false
//! ```
//!
//! Keywords and operators are case-insensitive. A word is a keyword only where a keyword makes
//! sense: `not pr` tests a field called `not`, `true eq 1` compares a field called `true`.
//!
//! Hostile input is bounded before any work is done: the length is checked first, nesting is
//! counted before each recursive step (negations are counted in a loop, not by recursion), and
//! the number of leaves is capped.

use super::{
    CompareOp, Filter, FilterError, Literal, MAX_DEPTH, MAX_INPUT_BYTES, MAX_TERMS, Pointer,
    truncate_for_message,
};

/// Parses a `_queryFilter` expression.
pub fn parse(input: &str) -> Result<Filter, FilterError> {
    if input.len() > MAX_INPUT_BYTES {
        return Err(FilterError::TooLong {
            len: input.len(),
            max: MAX_INPUT_BYTES,
        });
    }
    if input.trim().is_empty() {
        return Err(FilterError::Empty);
    }
    let tokens = tokenize(input)?;
    let mut parser = Parser {
        tokens,
        at: 0,
        terms: 0,
    };
    let filter = parser.or(0)?;
    let next = parser.peek();
    match next.kind {
        Kind::End => Ok(filter),
        Kind::RParen => Err(syntax(next.position, "unbalanced ')', nothing to close")),
        _ => Err(syntax(
            next.position,
            format!(
                "unexpected {}, expected 'and', 'or' or the end of the filter",
                next.kind.describe()
            ),
        )),
    }
}

fn syntax(position: usize, message: impl Into<String>) -> FilterError {
    FilterError::Syntax {
        position,
        message: message.into(),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    LParen,
    RParen,
    Bang,
    /// A bare word: a pointer, an operator, a keyword, a number.
    Word(String),
    /// A quoted string, escapes decoded.
    Str(String),
    End,
}

impl Kind {
    /// How the token is named in error messages.
    fn describe(&self) -> String {
        match self {
            Kind::LParen => "'('".to_owned(),
            Kind::RParen => "')'".to_owned(),
            Kind::Bang => "'!'".to_owned(),
            Kind::Word(w) => format!("'{}'", truncate_for_message(w)),
            Kind::Str(_) => "a quoted string".to_owned(),
            Kind::End => "the end of the filter".to_owned(),
        }
    }

    fn is_word(&self, keyword: &str) -> bool {
        matches!(self, Kind::Word(w) if w.eq_ignore_ascii_case(keyword))
    }

    /// A word that can follow a pointer: a comparison operator or `pr`.
    fn is_operator(&self) -> bool {
        matches!(self, Kind::Word(w) if CompareOp::from_name(w).is_some() || w.eq_ignore_ascii_case("pr"))
    }
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    /// Offset in characters from the start of the input.
    position: usize,
}

/// Splits the input into tokens; the last one is always `End`.
fn tokenize(input: &str) -> Result<Vec<Token>, FilterError> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let start = i;
        let kind = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => {
                i += 1;
                Kind::LParen
            }
            ')' => {
                i += 1;
                Kind::RParen
            }
            '!' => {
                i += 1;
                Kind::Bang
            }
            '"' | '\'' => {
                let (value, end) = quoted_string(&chars, i, c)?;
                i = end;
                Kind::Str(value)
            }
            _ => {
                while let Some(&w) = chars.get(i).filter(|w| !ends_word(**w)) {
                    if w == '\0' {
                        return Err(syntax(i, "NUL characters are not allowed"));
                    }
                    i += 1;
                }
                Kind::Word(chars.get(start..i).unwrap_or_default().iter().collect())
            }
        };
        tokens.push(Token {
            kind,
            position: start,
        });
    }
    tokens.push(Token {
        kind: Kind::End,
        position: chars.len(),
    });
    Ok(tokens)
}

/// Quotes start a string only at the start of a token: inside a word (`/o'neil`) they are
/// part of it.
fn ends_word(c: char) -> bool {
    c.is_whitespace() || matches!(c, '(' | ')')
}

/// Reads the string whose opening `quote` is at `start`; returns its value and the index after
/// the closing quote. Escapes are JSON's, plus `\'`.
fn quoted_string(
    chars: &[char],
    start: usize,
    quote: char,
) -> Result<(String, usize), FilterError> {
    let mut value = String::new();
    let mut i = start + 1;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err(syntax(start, "unterminated string"));
        };
        match c {
            c if c == quote => return Ok((value, i + 1)),
            '\0' => return Err(syntax(i, "NUL characters are not allowed")),
            '\\' => {
                let escape_at = i;
                let Some(&e) = chars.get(i + 1) else {
                    return Err(syntax(start, "unterminated string"));
                };
                i += 2;
                match e {
                    '"' | '\'' | '\\' | '/' => value.push(e),
                    'b' => value.push('\u{8}'),
                    'f' => value.push('\u{c}'),
                    'n' => value.push('\n'),
                    'r' => value.push('\r'),
                    't' => value.push('\t'),
                    'u' => {
                        let (decoded, end) = unicode_escape(chars, escape_at)?;
                        value.push(decoded);
                        i = end;
                    }
                    other => {
                        return Err(syntax(
                            escape_at,
                            format!("invalid escape '\\{other}' in string"),
                        ));
                    }
                }
            }
            c => {
                value.push(c);
                i += 1;
            }
        }
    }
}

/// Decodes `\uXXXX` (or a surrogate pair `\uD83D\uDE00`) starting at the backslash `at`.
fn unicode_escape(chars: &[char], at: usize) -> Result<(char, usize), FilterError> {
    let invalid = |message: &str| syntax(at, message);
    let hex4 = |from: usize| -> Option<u32> {
        let digits: String = chars.get(from..from + 4)?.iter().collect();
        if digits.chars().all(|d| d.is_ascii_hexdigit()) {
            u32::from_str_radix(&digits, 16).ok()
        } else {
            None
        }
    };
    let first = hex4(at + 2).ok_or_else(|| invalid("'\\u' must be followed by 4 hex digits"))?;
    let mut end = at + 6;
    let code = match first {
        0 => return Err(invalid("'\\u0000' is not allowed")),
        0xD800..=0xDBFF => {
            let low = match (chars.get(end), chars.get(end + 1)) {
                (Some('\\'), Some('u')) => hex4(end + 2),
                _ => None,
            };
            match low {
                Some(low @ 0xDC00..=0xDFFF) => {
                    end += 6;
                    0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00)
                }
                _ => return Err(invalid("unpaired surrogate in '\\u' escape")),
            }
        }
        0xDC00..=0xDFFF => return Err(invalid("unpaired surrogate in '\\u' escape")),
        other => other,
    };
    let decoded = char::from_u32(code).ok_or_else(|| invalid("invalid '\\u' escape"))?;
    Ok((decoded, end))
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    /// Leaves seen so far, against `MAX_TERMS`.
    terms: usize,
}

/// What a token list always ends with (tokenize pushes it).
static END: Token = Token {
    kind: Kind::End,
    position: 0,
};

impl Parser {
    fn peek(&self) -> &Token {
        self.peek_at(0)
    }

    /// The token `ahead` places further on; `End` past the end.
    fn peek_at(&self, ahead: usize) -> &Token {
        self.tokens
            .get(self.at + ahead)
            .or_else(|| self.tokens.last())
            .unwrap_or(&END)
    }

    fn advance(&mut self) -> Token {
        let token = self.peek().clone();
        if self.at < self.tokens.len() - 1 {
            self.at += 1;
        }
        token
    }

    fn or(&mut self, depth: usize) -> Result<Filter, FilterError> {
        let mut parts = vec![self.and(depth)?];
        while self.peek().kind.is_word("or") {
            self.advance();
            parts.push(self.and(depth)?);
        }
        Ok(single_or(parts, Filter::Or))
    }

    fn and(&mut self, depth: usize) -> Result<Filter, FilterError> {
        let mut parts = vec![self.not(depth)?];
        while self.peek().kind.is_word("and") {
            self.advance();
            parts.push(self.not(depth)?);
        }
        Ok(single_or(parts, Filter::And))
    }

    /// Negations are counted in a loop, so `!!!!…` cannot recurse past the depth limit.
    fn not(&mut self, depth: usize) -> Result<Filter, FilterError> {
        let mut negations = 0;
        while self.at_negation() {
            let token = self.advance();
            negations += 1;
            if depth + negations > MAX_DEPTH {
                return Err(FilterError::TooDeep {
                    position: token.position,
                    max: MAX_DEPTH,
                });
            }
        }
        let mut filter = self.primary(depth + negations)?;
        for _ in 0..negations {
            filter = Filter::Not(Box::new(filter));
        }
        Ok(filter)
    }

    /// `!`, or the word `not` unless it is a field name (followed by an operator).
    fn at_negation(&self) -> bool {
        match &self.peek().kind {
            Kind::Bang => true,
            kind => kind.is_word("not") && !self.peek_at(1).kind.is_operator(),
        }
    }

    fn primary(&mut self, depth: usize) -> Result<Filter, FilterError> {
        let token = self.advance();
        match token.kind {
            Kind::LParen => {
                if depth + 1 > MAX_DEPTH {
                    return Err(FilterError::TooDeep {
                        position: token.position,
                        max: MAX_DEPTH,
                    });
                }
                let inner = self.or(depth + 1)?;
                let close = self.advance();
                if close.kind != Kind::RParen {
                    return Err(syntax(
                        close.position,
                        format!(
                            "expected ')' to close the '(' at position {}, found {}",
                            token.position,
                            close.kind.describe()
                        ),
                    ));
                }
                Ok(inner)
            }
            Kind::Word(word) if !self.peek().kind.is_operator() => {
                let literal = if word.eq_ignore_ascii_case("true") {
                    Filter::True
                } else if word.eq_ignore_ascii_case("false") {
                    Filter::False
                } else {
                    let next = self.peek();
                    return Err(match &next.kind {
                        Kind::Word(op) => syntax(
                            next.position,
                            format!(
                                "unknown operator '{}' after {}",
                                truncate_for_message(op),
                                truncate_for_message(&word)
                            ),
                        ),
                        _ => syntax(
                            next.position,
                            format!("expected an operator after {}", truncate_for_message(&word)),
                        ),
                    });
                };
                self.count_term(token.position)?;
                Ok(literal)
            }
            Kind::Word(word) => {
                let field = Pointer::parse(&word).map_err(|e| match e {
                    FilterError::InvalidPointer { reason, .. } => syntax(
                        token.position,
                        format!("invalid field {}: {reason}", truncate_for_message(&word)),
                    ),
                    other => other,
                })?;
                self.count_term(token.position)?;
                self.comparison(field)
            }
            other => Err(syntax(
                token.position,
                format!(
                    "expected a field, '(', '!', true or false, found {}",
                    other.describe()
                ),
            )),
        }
    }

    /// Parses what follows a field: `pr`, or an operator and a value.
    fn comparison(&mut self, field: Pointer) -> Result<Filter, FilterError> {
        let op_token = self.advance();
        let Kind::Word(op_name) = &op_token.kind else {
            // `primary` only calls this when an operator follows.
            return Err(syntax(
                op_token.position,
                format!("expected an operator after {field}"),
            ));
        };
        if op_name.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present(field));
        }
        let Some(op) = CompareOp::from_name(op_name) else {
            return Err(syntax(
                op_token.position,
                format!(
                    "unknown operator '{}' after {field}",
                    truncate_for_message(op_name)
                ),
            ));
        };
        let value_token = self.advance();
        let value = match value_token.kind {
            Kind::Str(s) => Literal::String(s),
            Kind::Word(word) => word_literal(&word).ok_or_else(|| {
                let hint = if word.eq_ignore_ascii_case("null") {
                    " (there is no null: use '!(field pr)')"
                } else {
                    ""
                };
                // The value is not quoted back: it may be a password typed without quotes.
                syntax(
                    value_token.position,
                    format!(
                        "invalid value after '{}': expected a quoted string, a number, true or false{hint}",
                        op.as_str()
                    ),
                )
            })?,
            other => {
                return Err(syntax(
                    value_token.position,
                    format!(
                        "expected a value after '{}', found {}",
                        op.as_str(),
                        other.describe()
                    ),
                ));
            }
        };
        Ok(Filter::Compare { field, op, value })
    }

    fn count_term(&mut self, position: usize) -> Result<(), FilterError> {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(FilterError::TooManyTerms {
                position,
                max: MAX_TERMS,
            });
        }
        Ok(())
    }
}

/// An unquoted value: `true`, `false` (any case) or a JSON number.
fn word_literal(word: &str) -> Option<Literal> {
    if word.eq_ignore_ascii_case("true") {
        Some(Literal::Bool(true))
    } else if word.eq_ignore_ascii_case("false") {
        Some(Literal::Bool(false))
    } else {
        serde_json::from_str::<serde_json::Number>(word)
            .ok()
            .map(Literal::Number)
    }
}

/// One part stays itself; several become an `And`/`Or`.
fn single_or(mut parts: Vec<Filter>, combine: fn(Vec<Filter>) -> Filter) -> Filter {
    if parts.len() == 1 {
        parts.remove(0)
    } else {
        combine(parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ptr(s: &str) -> Pointer {
        Pointer::parse(s).unwrap()
    }

    fn cmp(field: &str, op: CompareOp, value: Literal) -> Filter {
        Filter::Compare {
            field: ptr(field),
            op,
            value,
        }
    }

    fn s(v: &str) -> Literal {
        Literal::String(v.to_owned())
    }

    fn n(v: &str) -> Literal {
        Literal::Number(serde_json::from_str(v).unwrap())
    }

    fn err(input: &str) -> String {
        parse(input).unwrap_err().to_string()
    }

    #[test]
    fn comparisons_with_every_operator() {
        for (name, op) in [
            ("eq", CompareOp::Eq),
            ("co", CompareOp::Co),
            ("sw", CompareOp::Sw),
            ("lt", CompareOp::Lt),
            ("le", CompareOp::Le),
            ("gt", CompareOp::Gt),
            ("ge", CompareOp::Ge),
        ] {
            let input = format!("/userName {name} \"bjensen\"");
            assert_eq!(parse(&input).unwrap(), cmp("/userName", op, s("bjensen")));
            let upper = format!("/userName {} \"bjensen\"", name.to_uppercase());
            assert_eq!(parse(&upper).unwrap(), cmp("/userName", op, s("bjensen")));
        }
    }

    #[test]
    fn pointers_with_and_without_slash() {
        assert_eq!(
            parse("userName eq 'x'").unwrap(),
            cmp("/userName", CompareOp::Eq, s("x"))
        );
        assert_eq!(
            parse("/name/givenName sw \"Ba\"").unwrap(),
            cmp("/name/givenName", CompareOp::Sw, s("Ba"))
        );
        assert_eq!(
            parse("/a~1b/c~0d eq 1").unwrap(),
            Filter::Compare {
                field: Pointer::from_tokens(vec!["a/b".into(), "c~d".into()]),
                op: CompareOp::Eq,
                value: n("1"),
            }
        );
    }

    #[test]
    fn presence_and_literals() {
        assert_eq!(parse("/mail pr").unwrap(), Filter::Present(ptr("/mail")));
        assert_eq!(parse("mail PR").unwrap(), Filter::Present(ptr("/mail")));
        assert_eq!(parse("true").unwrap(), Filter::True);
        assert_eq!(parse("FALSE").unwrap(), Filter::False);
        assert_eq!(parse(" ( true ) ").unwrap(), Filter::True);
    }

    #[test]
    fn values() {
        let value = |input: &str| match parse(input).unwrap() {
            Filter::Compare { value, .. } => value,
            other => panic!("not a comparison: {other:?}"),
        };
        assert_eq!(value("a eq 42"), n("42"));
        assert_eq!(value("a eq -42"), n("-42"));
        assert_eq!(value("a eq 4.25"), n("4.25"));
        assert_eq!(value("a eq 1e3"), n("1e3"));
        assert_eq!(value("a eq -1.5E-3"), n("-1.5e-3"));
        assert_eq!(
            value("a eq 18446744073709551615"),
            n("18446744073709551615")
        );
        assert_eq!(value("a eq true"), Literal::Bool(true));
        assert_eq!(value("a eq False"), Literal::Bool(false));
        assert_eq!(value("a eq \"\""), s(""));
        assert_eq!(value("a eq ''"), s(""));
        assert_eq!(value("a eq \"true\""), s("true"));
        assert_eq!(value("a eq \"42\""), s("42"));
    }

    #[test]
    fn string_escapes() {
        let value = |input: &str| match parse(input).unwrap() {
            Filter::Compare { value, .. } => value,
            other => panic!("not a comparison: {other:?}"),
        };
        assert_eq!(value(r#"a eq "say \"hi\"""#), s("say \"hi\""));
        assert_eq!(value(r"a eq 'it\'s'"), s("it's"));
        assert_eq!(value(r#"a eq 'say "hi"'"#), s("say \"hi\""));
        assert_eq!(value(r#"a eq "it's""#), s("it's"));
        assert_eq!(value(r#"a eq "back\\slash""#), s("back\\slash"));
        assert_eq!(value(r#"a eq "a\/b\n\t\r\b\f""#), s("a/b\n\t\r\u{8}\u{c}"));
        assert_eq!(value(r#"a eq "\u00e9\u20AC""#), s("é€"));
        assert_eq!(value(r#"a eq "\ud83d\ude00""#), s("😀"));
        assert_eq!(
            value("a eq \"snow ☃ and ünïcödé 😀\""),
            s("snow ☃ and ünïcödé 😀")
        );
        assert_eq!(
            value("a eq \"with ( parens ) and and or\""),
            s("with ( parens ) and and or")
        );
    }

    #[test]
    fn unicode_field_names_and_positions_count_characters() {
        assert_eq!(
            parse("/prénom eq \"é\"").unwrap(),
            cmp("/prénom", CompareOp::Eq, s("é"))
        );
        // "é" is two bytes but one character: the position counts characters.
        assert_eq!(
            err("/é eq"),
            "Invalid filter: expected a value after 'eq', found the end of the filter at position 5"
        );
    }

    #[test]
    fn precedence_and_binds_tighter_than_or() {
        let a = || cmp("/a", CompareOp::Eq, n("1"));
        let b = || cmp("/b", CompareOp::Eq, n("2"));
        let c = || cmp("/c", CompareOp::Eq, n("3"));
        assert_eq!(
            parse("a eq 1 and b eq 2 or c eq 3").unwrap(),
            Filter::Or(vec![Filter::And(vec![a(), b()]), c()])
        );
        assert_eq!(
            parse("a eq 1 or b eq 2 and c eq 3").unwrap(),
            Filter::Or(vec![a(), Filter::And(vec![b(), c()])])
        );
        assert_eq!(
            parse("a eq 1 and (b eq 2 or c eq 3)").unwrap(),
            Filter::And(vec![a(), Filter::Or(vec![b(), c()])])
        );
        assert_eq!(
            parse("a eq 1 AND b eq 2 And c eq 3").unwrap(),
            Filter::And(vec![a(), b(), c()])
        );
        assert_eq!(
            parse("!a eq 1 and b eq 2").unwrap(),
            Filter::And(vec![Filter::Not(Box::new(a())), b()])
        );
    }

    #[test]
    fn negation_forms() {
        let a = || Filter::Present(ptr("/a"));
        let not = |f: Filter| Filter::Not(Box::new(f));
        assert_eq!(parse("!a pr").unwrap(), not(a()));
        assert_eq!(parse("!(a pr)").unwrap(), not(a()));
        assert_eq!(parse("not a pr").unwrap(), not(a()));
        assert_eq!(parse("NOT(a pr)").unwrap(), not(a()));
        assert_eq!(parse("!!a pr").unwrap(), not(not(a())));
        assert_eq!(parse("not !a pr").unwrap(), not(not(a())));
        assert_eq!(parse("! true").unwrap(), not(Filter::True));
        // Keywords used as field names.
        assert_eq!(parse("not pr").unwrap(), Filter::Present(ptr("/not")));
        assert_eq!(
            parse("not eq 1").unwrap(),
            cmp("/not", CompareOp::Eq, n("1"))
        );
        assert_eq!(
            parse("true eq true").unwrap(),
            cmp("/true", CompareOp::Eq, Literal::Bool(true))
        );
        assert_eq!(
            parse("and pr and or pr").unwrap(),
            Filter::And(vec![
                Filter::Present(ptr("/and")),
                Filter::Present(ptr("/or"))
            ])
        );
    }

    #[test]
    fn whitespace_is_flexible() {
        let expected = Filter::And(vec![
            cmp("/a", CompareOp::Eq, s("x")),
            Filter::Not(Box::new(Filter::Present(ptr("/b")))),
        ]);
        assert_eq!(parse("(a eq \"x\")and(!(b pr))").unwrap(), expected);
        assert_eq!(
            parse("\t a \n eq  'x'   and ! b  pr \r\n").unwrap(),
            expected
        );
    }

    #[test]
    fn display_round_trips() {
        for input in [
            "/userName eq \"bjensen\"",
            "/a eq 1 and /b eq 2 or /c eq 3",
            "/a eq 1 and (/b eq 2 or /c eq 3)",
            "!(/a eq 1 and /b eq 2)",
            "!!/a pr",
            "(/a pr or /b pr) or /c pr",
            "/a eq \"q\\\"uote\" and /b~1c le -1.5 and /d eq false",
            "true or false",
            "/x eq \"\\u0001 ☃\"",
        ] {
            let filter = parse(input).unwrap();
            let shown = filter.to_string();
            assert_eq!(parse(&shown).unwrap(), filter, "{input} → {shown}");
        }
        assert_eq!(
            parse("a eq 1 and (b eq 2 or c eq 3)").unwrap().to_string(),
            "/a eq 1 and (/b eq 2 or /c eq 3)"
        );
    }

    #[test]
    fn error_messages_say_what_and_where() {
        let cases = [
            (
                "/userName ",
                "Invalid filter: expected an operator after /userName at position 10",
            ),
            (
                "/userName",
                "Invalid filter: expected an operator after /userName at position 9",
            ),
            (
                "/userName ne \"x\"",
                "Invalid filter: unknown operator 'ne' after /userName at position 10",
            ),
            (
                "/userName eq",
                "Invalid filter: expected a value after 'eq', found the end of the filter at position 12",
            ),
            (
                "/userName eq )",
                "Invalid filter: expected a value after 'eq', found ')' at position 13",
            ),
            (
                "/userName eq bob",
                "Invalid filter: invalid value after 'eq': expected a quoted string, a number, true or false at position 13",
            ),
            (
                "/userName eq \"bob",
                "Invalid filter: unterminated string at position 13",
            ),
            (
                "/userName eq 'bob\\'",
                "Invalid filter: unterminated string at position 13",
            ),
            (
                "/userName eq \"x\" extra",
                "Invalid filter: unexpected 'extra', expected 'and', 'or' or the end of the filter at position 17",
            ),
            (
                "/a pr)",
                "Invalid filter: unbalanced ')', nothing to close at position 5",
            ),
            (
                "(/a pr",
                "Invalid filter: expected ')' to close the '(' at position 0, found the end of the filter at position 6",
            ),
            (
                "/a pr and",
                "Invalid filter: expected a field, '(', '!', true or false, found the end of the filter at position 9",
            ),
            (
                "()",
                "Invalid filter: expected a field, '(', '!', true or false, found ')' at position 1",
            ),
            (
                "\"x\" eq 1",
                "Invalid filter: expected a field, '(', '!', true or false, found a quoted string at position 0",
            ),
            (
                "/a eq \"\\x\"",
                "Invalid filter: invalid escape '\\x' in string at position 7",
            ),
            (
                "/a eq \"\\u12\"",
                "Invalid filter: '\\u' must be followed by 4 hex digits at position 7",
            ),
            (
                "/a eq \"\\ud800\"",
                "Invalid filter: unpaired surrogate in '\\u' escape at position 7",
            ),
            (
                "/a eq \"\\u0000\"",
                "Invalid filter: '\\u0000' is not allowed at position 7",
            ),
            (
                "/a eq \"\0\"",
                "Invalid filter: NUL characters are not allowed at position 7",
            ),
            (
                "/a~2 eq 1",
                "Invalid filter: invalid field /a~2: '~' must be followed by 0 or 1 at position 0",
            ),
            (
                "/a eq null",
                "Invalid filter: invalid value after 'eq': expected a quoted string, a number, true or false (there is no null: use '!(field pr)') at position 6",
            ),
            (
                "/a eq 01",
                "Invalid filter: invalid value after 'eq': expected a quoted string, a number, true or false at position 6",
            ),
            ("", "Invalid filter: the filter is empty"),
            ("  \n ", "Invalid filter: the filter is empty"),
        ];
        for (input, expected) in cases {
            assert_eq!(err(input), expected, "input: {input:?}");
        }
    }

    #[test]
    fn more_syntax_errors() {
        for input in [
            "/a eq 1.",
            "/a eq .5",
            "/a eq +1",
            "/a eq 1e",
            "/a eq 1e999",
            "/a eq NaN",
            "/a eq 'x' and",
            "/a eq 'x' or or /b pr",
            "and",
            "!",
            "not",
            "/a eq 'x' /b eq 'y'",
            "((/a pr)",
            "(/a pr))",
            "/a eq = 'x'",
            "/a == 'x'",
            "/a eq 'x' && /b pr",
            "/a[b eq 1] pr",
        ] {
            assert!(
                matches!(parse(input), Err(FilterError::Syntax { .. })),
                "{input:?} gave {:?}",
                parse(input)
            );
        }
    }

    #[test]
    fn malicious_input_stays_data() {
        assert_eq!(
            parse("userName eq \"x\\\" or true\"").unwrap(),
            cmp("/userName", CompareOp::Eq, s("x\" or true"))
        );
        assert_eq!(
            parse("userName eq \"'; drop table managed_objects; --\"").unwrap(),
            cmp(
                "/userName",
                CompareOp::Eq,
                s("'; drop table managed_objects; --")
            )
        );
        // Unquoted, the same text is a syntax error, not SQL.
        assert!(parse("userName eq ''; drop table managed_objects; --").is_err());
        assert!(parse("'; drop table managed_objects; --").is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("{}/a pr{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(matches!(
            parse(&deep),
            Err(FilterError::TooDeep { max: 64, .. })
        ));
        let unclosed = "(".repeat(60_000);
        assert!(matches!(parse(&unclosed), Err(FilterError::TooDeep { .. })));
        let bangs = format!("{}/a pr", "!".repeat(60_000));
        assert!(matches!(parse(&bangs), Err(FilterError::TooDeep { .. })));
        let nots = format!("{}/a pr", "not ".repeat(10_000));
        assert!(matches!(parse(&nots), Err(FilterError::TooDeep { .. })));
        let mixed = format!("{}/a pr{}", "!(".repeat(5_000), ")".repeat(5_000));
        assert!(matches!(parse(&mixed), Err(FilterError::TooDeep { .. })));
    }

    #[test]
    fn nesting_up_to_the_limit_is_fine() {
        let ok = format!("{}/a pr{}", "(".repeat(64), ")".repeat(64));
        assert_eq!(parse(&ok).unwrap(), Filter::Present(ptr("/a")));
        let too_deep = format!("{}/a pr{}", "(".repeat(65), ")".repeat(65));
        assert_eq!(
            err(&too_deep),
            "Invalid filter: nested deeper than 64 levels at position 64"
        );
        let ok = format!("{}/a pr", "!".repeat(64));
        assert!(parse(&ok).is_ok());
        assert!(parse(&format!("{}/a pr", "!".repeat(65))).is_err());
    }

    #[test]
    fn too_long_input_is_refused_before_parsing() {
        let literal = format!("/a eq \"{}\"", "x".repeat(1024 * 1024));
        assert_eq!(
            parse(&literal).unwrap_err(),
            FilterError::TooLong {
                len: literal.len(),
                max: MAX_INPUT_BYTES
            }
        );
        let just_fits = format!("/a eq \"{}\"", "x".repeat(MAX_INPUT_BYTES - 8));
        assert_eq!(just_fits.len(), MAX_INPUT_BYTES);
        assert!(parse(&just_fits).is_ok());
    }

    #[test]
    fn too_many_comparisons() {
        let many = |count: usize| vec!["/a eq 1"; count].join(" or ");
        assert!(parse(&many(1000)).is_ok());
        assert!(matches!(
            parse(&many(1001)),
            Err(FilterError::TooManyTerms { max: 1000, .. })
        ));
        let literals = vec!["true"; 1001].join(" and ");
        assert!(matches!(
            parse(&literals),
            Err(FilterError::TooManyTerms { .. })
        ));
    }

    #[test]
    fn error_messages_quote_little_input() {
        let secret = "s".repeat(200);
        let message = err(&format!("/password eq {secret}"));
        assert!(!message.contains("sss"), "{message}");
        let message = err(&format!("/password eq \"{secret}"));
        assert!(!message.contains("sss"), "{message}");
    }

    mod properties {
        use super::super::parse;
        use proptest::prelude::*;

        /// Pieces filters are made of, so random input reaches deep into the grammar.
        const PIECES: &[&str] = &[
            "(", ")", "!", " ", "and", "or", "not", "eq", "co", "sw", "lt", "ge", "pr", "true",
            "false", "\"", "'", "\\", "\\u", "0000", "D83D", "userName", "/name/a", "~1", "1e9",
            "-0.5", "é", "😀", "\u{0}",
        ];

        proptest! {
            #[test]
            fn arbitrary_text_never_panics(input in ".{0,200}") {
                let _ = parse(&input);
            }

            #[test]
            fn token_soup_never_panics_and_parses_back(
                pieces in proptest::collection::vec(proptest::sample::select(PIECES), 0..60)
            ) {
                let input = pieces.concat();
                if let Ok(filter) = parse(&input) {
                    // What parses renders as text that parses to the same filter.
                    prop_assert_eq!(parse(&filter.to_string()).ok(), Some(filter));
                }
            }
        }
    }
}
