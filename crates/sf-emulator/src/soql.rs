//! The SOQL subset a sync needs: parser, type checks and evaluator. The parser is generic over the
//! queried object's columns ([`Column`]): `User` resolves to its fixed record layout, the access
//! objects (`crate::access`) to their own columns, relationship paths such as `PermissionSet.Name`
//! included.
//!
//! `SELECT f1, f2 | COUNT() FROM <object> [WHERE …] [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], …]
//! [LIMIT n] [OFFSET n]`. WHERE has `=`, `!=`, `<>`, `<`, `>`, `<=`, `>=`, `[NOT] IN (…)`, `LIKE`,
//! `AND`, `OR`, `NOT`, parentheses; literals are strings (`\'` escapes), numbers, `true`/`false`/`null`
//! and date-times (`2024-01-01T00:00:00Z`, `…+01:00`). As in SOQL, keywords and field names are
//! case-insensitive, text comparisons are case-insensitive, `AND` and `OR` cannot be mixed at one level
//! without parentheses, and `ASC` sorts nulls first, `DESC` nulls last. Errors carry Salesforce's
//! message layout: the query line, a caret, `ERROR at Row:r:Column:c`, and the reason.
//!
//! The SELECT list may hold parent-to-child subqueries, `(SELECT … FROM <relationship> …)`:
//! marked here, parsed by the caller over the child's columns ([`Query::parse_subquery`]).
//! Comparisons of an id column with ids give the range a store may read from an ordered index
//! ([`Query::id_range`]).

mod range;
mod subquery;

use std::cmp::Ordering;

use chrono::{DateTime, Utc};

use super::ids;
use super::org::Org;
use super::schema::{Field, FieldType, Record, Val, parse_datetime};
pub use range::{IdRange, is_satisfiable};
pub use subquery::Subquery;

/// A field the parser can name: its type decides which literals it accepts.
pub trait Column: Copy + PartialEq + std::fmt::Debug {
    fn ty(self) -> FieldType;
    /// Its name as written in messages (`PermissionSet.Name` for a relationship path).
    fn display(self) -> String;
}

impl Column for Field {
    fn ty(self) -> FieldType {
        self.def().ty
    }
    fn display(self) -> String {
        self.def().name.to_owned()
    }
}

/// A field value as the evaluator reads it, borrowed from whichever store holds the record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum V<'a> {
    Null,
    Str(&'a str),
    Bool(bool),
    DateTime(DateTime<Utc>),
}

impl Val {
    pub fn view(&self) -> V<'_> {
        match self {
            Val::Null => V::Null,
            Val::Str(s) => V::Str(s),
            Val::Bool(b) => V::Bool(*b),
            Val::DateTime(d) => V::DateTime(*d),
        }
    }
}

impl V<'_> {
    fn is_null(&self) -> bool {
        matches!(self, V::Null)
    }
}

/// Resolves a field name (or relationship path) of the queried object, or says why not.
type Resolver<'r, C> = &'r dyn Fn(&str) -> Result<C, String>;

/// A SOQL error: `MALFORMED_QUERY`, `INVALID_FIELD`, `INVALID_TYPE`, … and its full message.
#[derive(Debug, Clone, PartialEq)]
pub struct SoqlError {
    pub code: &'static str,
    pub message: String,
}

impl SoqlError {
    /// An error at byte `pos` of `src`, in Salesforce's layout (query line, caret, position, text).
    pub fn at(src: &str, pos: usize, code: &'static str, text: String) -> SoqlError {
        error_at(src, pos, code, text)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(String),
    DateTime(DateTime<Utc>),
    Date(String),
    Comma,
    LParen,
    RParen,
    Op(CmpOp),
    Eof,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

/// A typed literal, already converted for the field it is compared with.
#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Null,
    /// Text compared case-insensitively.
    Text(String),
    /// A canonical 15-char id.
    Id(String),
    Bool(bool),
    DateTime(DateTime<Utc>),
}

#[derive(Debug, Clone, PartialEq)]
enum LikeTok {
    Any,
    One,
    Char(char),
}

#[derive(Debug, Clone, PartialEq)]
enum Expr<C> {
    And(Vec<Expr<C>>),
    Or(Vec<Expr<C>>),
    Not(Box<Expr<C>>),
    Cmp {
        field: C,
        op: CmpOp,
        lit: Lit,
    },
    In {
        field: C,
        lits: Vec<Lit>,
        negated: bool,
    },
    Like {
        field: C,
        pattern: Vec<LikeTok>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderKey<C> {
    pub field: C,
    pub desc: bool,
    pub nulls_first: bool,
}

/// A parsed query over columns `C` (`Field` for `User`).
#[derive(Debug, Clone, PartialEq)]
pub struct Query<C = Field> {
    /// Selected fields, in SELECT order (empty for `COUNT()`).
    pub fields: Vec<C>,
    pub count_only: bool,
    filter: Option<Expr<C>>,
    pub order: Vec<OrderKey<C>>,
    pub limit: Option<usize>,
    pub offset: usize,
    /// Parent-to-child subqueries of the SELECT list, unparsed (their columns are another
    /// object's: see [`Query::parse_subquery`]).
    pub subqueries: Vec<Subquery>,
}

struct Lexer<'a> {
    src: &'a str,
    toks: Vec<(Tok, usize)>,
}

impl<'a> Lexer<'a> {
    fn run(src: &'a str) -> Result<Vec<(Tok, usize)>, SoqlError> {
        let mut lx = Lexer {
            src,
            toks: Vec::new(),
        };
        let chars: Vec<(usize, char)> = src.char_indices().collect();
        let mut i = 0;
        while let Some(&(pos, c)) = chars.get(i) {
            match c {
                c if c.is_whitespace() => i += 1,
                ',' => {
                    lx.toks.push((Tok::Comma, pos));
                    i += 1;
                }
                '(' => {
                    lx.toks.push((Tok::LParen, pos));
                    i += 1;
                }
                ')' => {
                    lx.toks.push((Tok::RParen, pos));
                    i += 1;
                }
                '=' => {
                    lx.toks.push((Tok::Op(CmpOp::Eq), pos));
                    i += 1;
                }
                '!' | '<' | '>' => {
                    let next = chars.get(i + 1).map(|x| x.1);
                    let (op, len) = match (c, next) {
                        ('!', Some('=')) => (CmpOp::Ne, 2),
                        ('<', Some('>')) => (CmpOp::Ne, 2),
                        ('<', Some('=')) => (CmpOp::Le, 2),
                        ('>', Some('=')) => (CmpOp::Ge, 2),
                        ('<', _) => (CmpOp::Lt, 1),
                        ('>', _) => (CmpOp::Gt, 1),
                        _ => return Err(lx.error(pos, format!("unexpected token: '{c}'"))),
                    };
                    lx.toks.push((Tok::Op(op), pos));
                    i += len;
                }
                '\'' => {
                    // `\%` and `\_` are escapes of a LIKE pattern, which follows the keyword.
                    let like = matches!(lx.toks.last(), Some((Tok::Ident(k), _)) if k.eq_ignore_ascii_case("like"));
                    let (s, next) = lx.string(&chars, i, pos, like)?;
                    lx.toks.push((Tok::Str(s), pos));
                    i = next;
                }
                c if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => {
                    let mut j = i + 1;
                    while let Some(&(_, d)) = chars.get(j) {
                        if d.is_ascii_alphanumeric() || matches!(d, '.' | ':' | '-' | '+') {
                            j += 1;
                        } else {
                            break;
                        }
                    }
                    let end = chars.get(j).map_or(src.len(), |x| x.0);
                    let text = &src[pos..end];
                    let tok = if text.len() >= 10 && text.as_bytes().get(4) == Some(&b'-') {
                        if text.contains('T') {
                            // SOQL date-times: `Z` or `±hh:mm`, optional fractions.
                            match parse_datetime(text) {
                                Some(d) => Tok::DateTime(d),
                                None => {
                                    return Err(lx.error(
                                        pos,
                                        format!(
                                            "line 1:{} no viable alternative at character '{}'",
                                            pos, text
                                        ),
                                    ));
                                }
                            }
                        } else {
                            Tok::Date(text.to_owned())
                        }
                    } else if text.parse::<f64>().is_ok() {
                        Tok::Num(text.to_owned())
                    } else {
                        return Err(lx.error(pos, format!("unexpected token: '{text}'")));
                    };
                    lx.toks.push((tok, pos));
                    i = j;
                }
                c if c.is_alphabetic() || c == '_' => {
                    let mut j = i + 1;
                    while chars
                        .get(j)
                        .is_some_and(|&(_, d)| d.is_alphanumeric() || matches!(d, '_' | '.'))
                    {
                        j += 1;
                    }
                    let end = chars.get(j).map_or(src.len(), |x| x.0);
                    lx.toks.push((Tok::Ident(src[pos..end].to_owned()), pos));
                    i = j;
                }
                c => return Err(lx.error(pos, format!("unexpected token: '{c}'"))),
            }
        }
        lx.toks.push((Tok::Eof, src.len()));
        Ok(lx.toks)
    }

    fn error(&self, pos: usize, text: String) -> SoqlError {
        error_at(self.src, pos, "MALFORMED_QUERY", text)
    }

    /// The string literal opening at `chars[open]` (byte `pos` of the query); returns its text
    /// and the index after its closing quote. Exactly the documented escapes are read ("Quoted
    /// String Escape Sequences": `\n \r \t \b \f` in either case, `\" \' \\`, `\uXXXX`, and `\%`
    /// `\_`, which only `LIKE` accepts: they and `\\` are kept escaped for it to tell apart).
    /// `\b` reads as backspace (the reference's translations; its English table says "Bell").
    /// Stricter than documented, on purpose: a raw control character is refused (the escapes
    /// exist for them, and a client that forgets one fails here), and so is a string longer than
    /// the 4,000 characters a WHERE clause accepts (the wording of that error is the emulator's).
    fn string(
        &self,
        chars: &[(usize, char)],
        open: usize,
        pos: usize,
        like: bool,
    ) -> Result<(String, usize), SoqlError> {
        let invalid = |what: String| {
            let shown: String = chars.iter().skip(open).take(40).map(|c| c.1).collect();
            self.error(
                pos,
                format!("Invalid string literal {shown:?}. {what} in string literal."),
            )
        };
        let hex4 = |at: usize| -> Option<u32> {
            let digits: String = chars.get(at..at + 4)?.iter().map(|c| c.1).collect();
            if digits.chars().all(|d| d.is_ascii_hexdigit()) {
                u32::from_str_radix(&digits, 16).ok()
            } else {
                None
            }
        };
        let mut s = String::new();
        let mut j = open + 1;
        loop {
            let Some(&(_, d)) = chars.get(j) else {
                return Err(self.error(
                    pos,
                    "line 1:0 mismatched character '<EOF>' expecting '''".to_owned(),
                ));
            };
            match d {
                '\\' => {
                    let Some(&(_, e)) = chars.get(j + 1) else {
                        return Err(
                            self.error(pos, "Invalid string literal: missing escape".to_owned())
                        );
                    };
                    j += 2;
                    match e {
                        'n' | 'N' => s.push('\n'),
                        't' | 'T' => s.push('\t'),
                        'r' | 'R' => s.push('\r'),
                        'b' | 'B' => s.push('\u{8}'),
                        'f' | 'F' => s.push('\u{c}'),
                        '\'' | '"' => s.push(e),
                        '%' | '_' if !like => {
                            return Err(invalid(format!(
                                "Illegal character sequence '\\{e}' outside LIKE"
                            )));
                        }
                        '%' | '_' | '\\' => {
                            s.push('\\');
                            s.push(e);
                        }
                        'u' => {
                            let Some(mut code) = hex4(j) else {
                                return Err(invalid("Illegal character sequence '\\u'".into()));
                            };
                            j += 4;
                            // A character beyond the first plane is a UTF-16 surrogate pair.
                            if (0xD800..0xDC00).contains(&code) {
                                let paired = chars.get(j).map(|c| c.1) == Some('\\')
                                    && chars.get(j + 1).map(|c| c.1) == Some('u');
                                let low = hex4(j + 2)
                                    .filter(|low| paired && (0xDC00..0xE000).contains(low));
                                let Some(low) = low else {
                                    return Err(invalid("Unpaired surrogate".into()));
                                };
                                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                                j += 6;
                            }
                            let Some(c) = char::from_u32(code) else {
                                return Err(invalid("Unpaired surrogate".into()));
                            };
                            // Written as an escape, a wildcard or backslash is itself.
                            if matches!(c, '%' | '_' | '\\') {
                                s.push('\\');
                            }
                            s.push(c);
                        }
                        _ => {
                            return Err(invalid(format!("Illegal character sequence '\\{e}'")));
                        }
                    }
                }
                '\'' => {
                    j += 1;
                    break;
                }
                d if d.is_control() => {
                    return Err(invalid(format!(
                        "Unescaped control character U+{:04X}",
                        u32::from(d)
                    )));
                }
                d => {
                    s.push(d);
                    j += 1;
                }
            }
        }
        // As written, between the quotes.
        if j - open - 2 > MAX_WHERE_STRING {
            return Err(self.error(
                pos,
                format!(
                    "String literal exceeds the maximum length of {MAX_WHERE_STRING} characters"
                ),
            ));
        }
        Ok((s, j))
    }
}

/// The longest string a WHERE clause accepts (SOQL reference, WHERE).
const MAX_WHERE_STRING: usize = 4_000;

/// Salesforce's layout: `\n<line>\n<caret>\nERROR at Row:r:Column:c\n<text>`.
fn error_at(src: &str, pos: usize, code: &'static str, text: String) -> SoqlError {
    let pos = pos.min(src.len());
    let before = &src[..pos];
    let row = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line_end = src[pos..].find('\n').map_or(src.len(), |i| pos + i);
    let col = src[line_start..pos].chars().count() + 1;
    let caret = format!("{}^", " ".repeat(col - 1));
    SoqlError {
        code,
        message: format!(
            "\n{}\n{caret}\nERROR at Row:{row}:Column:{col}\n{text}",
            &src[line_start..line_end]
        ),
    }
}

struct Parser<'a, C> {
    src: &'a str,
    toks: Vec<(Tok, usize)>,
    at: usize,
    /// The object FROM must name (for a subquery: the child relationship).
    entity: &'a str,
    /// For a subquery: the parent object, which may qualify the relationship
    /// (`FROM User.PermissionSetAssignments`); the tokens then end with its `)`.
    parent: Option<&'a str>,
    resolve: Resolver<'a, C>,
}

impl<C: Column> Parser<'_, C> {
    fn peek(&self) -> &Tok {
        self.toks.get(self.at).map_or(&Tok::Eof, |t| &t.0)
    }

    fn pos(&self) -> usize {
        self.toks.get(self.at).map_or(self.src.len(), |t| t.1)
    }

    fn bump(&mut self) -> Tok {
        let t = self.peek().clone();
        self.at += 1;
        t
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }

    fn unexpected(&self) -> SoqlError {
        let text = match self.peek() {
            Tok::Eof => "unexpected token: <EOF>".to_owned(),
            _ => {
                let start = self.pos();
                let end = self.toks.get(self.at + 1).map_or(self.src.len(), |t| t.1);
                format!("unexpected token: '{}'", self.src[start..end].trim_end())
            }
        };
        error_at(self.src, self.pos(), "MALFORMED_QUERY", text)
    }

    fn expect_kw(&mut self, kw: &str) -> Result<(), SoqlError> {
        if self.is_kw(kw) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn field(&mut self) -> Result<C, SoqlError> {
        let pos = self.pos();
        let Tok::Ident(name) = self.peek().clone() else {
            return Err(self.unexpected());
        };
        self.at += 1;
        (self.resolve)(&name).map_err(|text| error_at(self.src, pos, "INVALID_FIELD", text))
    }

    fn number(&mut self) -> Result<usize, SoqlError> {
        match self.peek().clone() {
            Tok::Num(n) => match n.parse::<usize>() {
                Ok(v) => {
                    self.at += 1;
                    Ok(v)
                }
                Err(_) => Err(self.unexpected()),
            },
            _ => Err(self.unexpected()),
        }
    }

    fn query(&mut self) -> Result<Query<C>, SoqlError> {
        self.expect_kw("SELECT")?;
        let mut fields = Vec::new();
        let mut subqueries = Vec::new();
        let mut count_only = false;
        if self.is_kw("COUNT")
            && self
                .toks
                .get(self.at + 1)
                .is_some_and(|t| t.0 == Tok::LParen)
        {
            self.at += 2;
            if *self.peek() != Tok::RParen {
                return Err(self.unexpected());
            }
            self.at += 1;
            count_only = true;
        } else {
            loop {
                if self.at_subquery() {
                    let sub = self.subquery(fields.len())?;
                    subqueries.push(sub);
                } else {
                    let pos = self.pos();
                    let f = self.field()?;
                    if fields.contains(&f) {
                        return Err(error_at(
                            self.src,
                            pos,
                            "MALFORMED_QUERY",
                            format!("duplicate field selected: {}", f.display()),
                        ));
                    }
                    fields.push(f);
                }
                if *self.peek() == Tok::Comma {
                    self.at += 1;
                } else {
                    break;
                }
            }
        }
        self.expect_kw("FROM")?;
        let pos = self.pos();
        match self.bump() {
            Tok::Ident(obj) if self.names_entity(&obj) => {}
            Tok::Ident(obj) => {
                return Err(error_at(
                    self.src,
                    pos,
                    "INVALID_TYPE",
                    format!(
                        "sObject type '{obj}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names."
                    ),
                ));
            }
            _ => {
                self.at -= 1;
                return Err(self.unexpected());
            }
        }
        let mut q = Query {
            fields,
            count_only,
            filter: None,
            order: Vec::new(),
            limit: None,
            offset: 0,
            subqueries,
        };
        if self.is_kw("WHERE") {
            self.at += 1;
            q.filter = Some(self.condition()?);
        }
        if self.is_kw("ORDER") {
            self.at += 1;
            self.expect_kw("BY")?;
            loop {
                let field = self.field()?;
                let mut desc = false;
                if self.is_kw("ASC") {
                    self.at += 1;
                } else if self.is_kw("DESC") {
                    self.at += 1;
                    desc = true;
                }
                let mut nulls_first = !desc;
                if self.is_kw("NULLS") {
                    self.at += 1;
                    if self.is_kw("FIRST") {
                        nulls_first = true;
                    } else if self.is_kw("LAST") {
                        nulls_first = false;
                    } else {
                        return Err(self.unexpected());
                    }
                    self.at += 1;
                }
                q.order.push(OrderKey {
                    field,
                    desc,
                    nulls_first,
                });
                if *self.peek() == Tok::Comma {
                    self.at += 1;
                } else {
                    break;
                }
            }
        }
        if self.is_kw("LIMIT") {
            self.at += 1;
            q.limit = Some(self.number()?);
        }
        if self.is_kw("OFFSET") {
            self.at += 1;
            let pos = self.pos();
            q.offset = self.number()?;
            if q.offset > 2000 {
                return Err(error_at(
                    self.src,
                    pos,
                    "NUMBER_OUTSIDE_VALID_RANGE",
                    "Maximum SOQL offset allowed is 2000".to_owned(),
                ));
            }
        }
        if self.parent.is_some() {
            if *self.peek() != Tok::RParen {
                return Err(self.unexpected());
            }
            self.at += 1;
        }
        if *self.peek() != Tok::Eof {
            return Err(self.unexpected());
        }
        Ok(q)
    }

    /// Whether FROM's `obj` names the entity (a subquery's may be qualified by the parent).
    fn names_entity(&self, obj: &str) -> bool {
        obj.eq_ignore_ascii_case(self.entity)
            || self.parent.is_some_and(|p| {
                obj.split_once('.').is_some_and(|(o, rel)| {
                    o.eq_ignore_ascii_case(p) && rel.eq_ignore_ascii_case(self.entity)
                })
            })
    }

    /// A condition chain: all `AND` or all `OR` at one level, as SOQL requires.
    fn condition(&mut self) -> Result<Expr<C>, SoqlError> {
        let first = self.unary()?;
        let mut items = vec![first];
        let mut joiner: Option<&'static str> = None;
        loop {
            let kw = if self.is_kw("AND") {
                "AND"
            } else if self.is_kw("OR") {
                "OR"
            } else {
                break;
            };
            if joiner.is_some_and(|j| j != kw) {
                return Err(self.unexpected());
            }
            joiner = Some(kw);
            self.at += 1;
            items.push(self.unary()?);
        }
        Ok(match joiner {
            None => items.pop().unwrap_or(Expr::And(Vec::new())),
            Some("AND") => Expr::And(items),
            Some(_) => Expr::Or(items),
        })
    }

    fn unary(&mut self) -> Result<Expr<C>, SoqlError> {
        if self.is_kw("NOT") {
            self.at += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if *self.peek() == Tok::LParen {
            self.at += 1;
            let e = self.condition()?;
            if *self.peek() != Tok::RParen {
                return Err(self.unexpected());
            }
            self.at += 1;
            return Ok(e);
        }
        self.predicate()
    }

    fn predicate(&mut self) -> Result<Expr<C>, SoqlError> {
        let field = self.field()?;
        if self.is_kw("NOT") || self.is_kw("IN") {
            let negated = self.is_kw("NOT");
            if negated {
                self.at += 1;
                if !self.is_kw("IN") {
                    return Err(self.unexpected());
                }
            }
            self.at += 1;
            if *self.peek() != Tok::LParen {
                return Err(self.unexpected());
            }
            self.at += 1;
            let mut lits = Vec::new();
            loop {
                lits.push(self.literal(field)?);
                match self.bump() {
                    Tok::Comma => continue,
                    Tok::RParen => break,
                    _ => {
                        self.at -= 1;
                        return Err(self.unexpected());
                    }
                }
            }
            return Ok(Expr::In {
                field,
                lits,
                negated,
            });
        }
        if self.is_kw("LIKE") {
            self.at += 1;
            let pos = self.pos();
            let Tok::Str(s) = self.bump() else {
                self.at -= 1;
                return Err(self.unexpected());
            };
            if !field.ty().is_text() {
                return Err(error_at(
                    self.src,
                    pos,
                    "INVALID_FIELD",
                    format!("invalid operator on field: {}", field.display()),
                ));
            }
            return Ok(Expr::Like {
                field,
                pattern: like_pattern(&s),
            });
        }
        let op = match self.bump() {
            Tok::Op(op) => op,
            _ => {
                self.at -= 1;
                return Err(self.unexpected());
            }
        };
        let lit = self.literal(field)?;
        Ok(Expr::Cmp { field, op, lit })
    }

    /// A literal, type-checked against `field` the way Salesforce checks filter values.
    fn literal(&mut self, field: C) -> Result<Lit, SoqlError> {
        let pos = self.pos();
        let (ty, name) = (field.ty(), field.display());
        let tok = self.bump();
        let type_error = |expect: &str, quoted: bool| {
            error_at(
                self.src,
                pos,
                "INVALID_FIELD",
                format!(
                    "value of filter criterion for field '{}' must be of type {expect} and should {}be enclosed in quotes",
                    name,
                    if quoted { "" } else { "not " }
                ),
            )
        };
        match tok {
            Tok::Ident(s) if s.eq_ignore_ascii_case("null") => Ok(Lit::Null),
            Tok::Ident(s) if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") => {
                if ty == FieldType::Boolean {
                    Ok(Lit::Bool(s.eq_ignore_ascii_case("true")))
                } else if ty == FieldType::DateTime {
                    Err(type_error("dateTime", false))
                } else {
                    Err(type_error("string", true))
                }
            }
            Tok::Str(s) => match ty {
                FieldType::Boolean => Err(type_error("boolean", false)),
                FieldType::DateTime => Err(type_error("dateTime", false)),
                t if t.is_id() => match ids::canonical_15(&s) {
                    Some(c) => Ok(Lit::Id(c)),
                    None => Err(error_at(
                        self.src,
                        pos,
                        "INVALID_QUERY_FILTER_OPERATOR",
                        format!("invalid ID field: {s}"),
                    )),
                },
                _ => Ok(Lit::Text(unescape_outside_like(&s))),
            },
            Tok::DateTime(d) => match ty {
                FieldType::DateTime => Ok(Lit::DateTime(d)),
                FieldType::Boolean => Err(type_error("boolean", false)),
                _ => Err(type_error("string", true)),
            },
            Tok::Num(_) | Tok::Date(_) => match ty {
                FieldType::DateTime => Err(type_error("dateTime", false)),
                FieldType::Boolean => Err(type_error("boolean", false)),
                _ => Err(type_error("string", true)),
            },
            _ => {
                self.at -= 1;
                Err(self.unexpected())
            }
        }
    }
}

/// A lexed string outside LIKE: `\\` is a backslash, and a `%` or `_` written `\uXXXX` is itself
/// (written `\%` or `\_` it was refused by the lexer).
fn unescape_outside_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

fn like_pattern(s: &str) -> Vec<LikeTok> {
    let mut out = Vec::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => out.push(LikeTok::Any),
            '_' => out.push(LikeTok::One),
            '\\' => {
                if let Some(n) = chars.next() {
                    out.extend(n.to_lowercase().map(LikeTok::Char));
                }
            }
            c => out.extend(c.to_lowercase().map(LikeTok::Char)),
        }
    }
    out
}

/// Wildcard match (`%` any run, `_` one char), case-insensitive; greedy with one backtrack point.
fn like_match(pattern: &[LikeTok], text: &str) -> bool {
    let t: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
    let (mut p, mut i) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while let Some(&ch) = t.get(i) {
        match pattern.get(p) {
            Some(LikeTok::Char(c)) if *c == ch => {
                p += 1;
                i += 1;
            }
            Some(LikeTok::One) => {
                p += 1;
                i += 1;
            }
            Some(LikeTok::Any) => {
                star = Some((p, i));
                p += 1;
            }
            _ => match star {
                Some((sp, si)) => {
                    p = sp + 1;
                    i = si + 1;
                    star = Some((sp, si + 1));
                }
                None => return false,
            },
        }
    }
    pattern.iter().skip(p).all(|x| *x == LikeTok::Any)
}

fn cmp_text_ci(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        for (x, y) in a.iter().zip(b) {
            match x.to_ascii_lowercase().cmp(&y.to_ascii_lowercase()) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        return a.len().cmp(&b.len());
    }
    a.chars()
        .flat_map(char::to_lowercase)
        .cmp(b.chars().flat_map(char::to_lowercase))
}

/// Compares a non-null field value with a non-null literal; `None` if they cannot be compared.
fn cmp_val(v: V<'_>, lit: &Lit) -> Option<Ordering> {
    match (v, lit) {
        (V::Str(s), Lit::Text(t)) => Some(cmp_text_ci(s, t)),
        (V::Str(s), Lit::Id(c)) => Some(s.get(..15).unwrap_or(s).cmp(c.as_str())),
        (V::Bool(b), Lit::Bool(l)) => Some(b.cmp(l)),
        (V::DateTime(d), Lit::DateTime(l)) => Some(d.cmp(l)),
        _ => None,
    }
}

/// Whether the record whose fields `get` reads matches `e`.
fn eval<'a, C: Column>(e: &Expr<C>, get: &impl Fn(C) -> V<'a>) -> bool {
    match e {
        Expr::And(items) => items.iter().all(|x| eval(x, get)),
        Expr::Or(items) => items.iter().any(|x| eval(x, get)),
        Expr::Not(x) => !eval(x, get),
        Expr::Cmp { field, op, lit } => {
            let v = get(*field);
            match (v.is_null(), lit) {
                (true, Lit::Null) => matches!(op, CmpOp::Eq),
                (false, Lit::Null) => matches!(op, CmpOp::Ne),
                // SOQL: a null field is "not equal" to any value, and fails every other comparison.
                (true, _) => matches!(op, CmpOp::Ne),
                (false, lit) => match cmp_val(v, lit) {
                    Some(o) => match op {
                        CmpOp::Eq => o == Ordering::Equal,
                        CmpOp::Ne => o != Ordering::Equal,
                        CmpOp::Lt => o == Ordering::Less,
                        CmpOp::Gt => o == Ordering::Greater,
                        CmpOp::Le => o != Ordering::Greater,
                        CmpOp::Ge => o != Ordering::Less,
                    },
                    None => false,
                },
            }
        }
        Expr::In {
            field,
            lits,
            negated,
        } => {
            let v = get(*field);
            let found = lits.iter().any(|l| match (v.is_null(), l) {
                (true, Lit::Null) => true,
                (false, Lit::Null) | (true, _) => false,
                (false, l) => cmp_val(v, l) == Some(Ordering::Equal),
            });
            found != *negated
        }
        Expr::Like { field, pattern } => match get(*field) {
            V::Str(s) => like_match(pattern, s),
            _ => false,
        },
    }
}

fn cmp_field<C: Column>(a: V<'_>, b: V<'_>, key: &OrderKey<C>) -> Ordering {
    match (a.is_null(), b.is_null()) {
        (true, true) => return Ordering::Equal,
        (true, false) => {
            return if key.nulls_first {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        (false, true) => {
            return if key.nulls_first {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        (false, false) => {}
    }
    let o = match (a, b) {
        (V::Str(x), V::Str(y)) => {
            if key.field.ty().is_id() {
                x.cmp(y)
            } else {
                cmp_text_ci(x, y)
            }
        }
        (V::Bool(x), V::Bool(y)) => x.cmp(&y),
        (V::DateTime(x), V::DateTime(y)) => x.cmp(&y),
        _ => Ordering::Equal,
    };
    if key.desc { o.reverse() } else { o }
}

/// The `User` columns: a field of the fixed record layout; no relationship paths.
fn resolve_user(name: &str) -> Result<Field, String> {
    if let Some((rel, _)) = name.split_once('.') {
        return Err(unknown_relationship(rel));
    }
    Field::named(name).ok_or_else(|| no_such_column(name, "User"))
}

pub fn unknown_relationship(rel: &str) -> String {
    format!(
        "Didn't understand relationship '{rel}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names."
    )
}

pub fn no_such_column(name: &str, entity: &str) -> String {
    format!(
        "No such column '{name}' on entity '{entity}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."
    )
}

/// The object a query's FROM names (the first top-level `FROM`), to pick its columns before
/// parsing the SELECT list that precedes it. `None` when there is none: the parser then reports
/// the error where it finds it.
pub fn from_object(src: &str) -> Result<Option<String>, SoqlError> {
    let toks = Lexer::run(src)?;
    let mut depth = 0usize;
    let mut iter = toks.iter().map(|t| &t.0);
    while let Some(t) = iter.next() {
        match t {
            Tok::LParen => depth += 1,
            Tok::RParen => depth = depth.saturating_sub(1),
            Tok::Ident(k) if depth == 0 && k.eq_ignore_ascii_case("FROM") => {
                return Ok(match iter.next() {
                    Some(Tok::Ident(obj)) => Some(obj.clone()),
                    _ => None,
                });
            }
            _ => {}
        }
    }
    Ok(None)
}

impl<C: Column> Query<C> {
    /// Parses a query over `entity`, whose columns `resolve` names.
    pub fn parse_with(
        src: &str,
        entity: &str,
        resolve: Resolver<'_, C>,
    ) -> Result<Query<C>, SoqlError> {
        let toks = Lexer::run(src)?;
        Parser {
            src,
            toks,
            at: 0,
            entity,
            parent: None,
            resolve,
        }
        .query()
    }

    /// Whether the record `get` reads passes the WHERE clause.
    pub fn matches<'a>(&self, get: &impl Fn(C) -> V<'a>) -> bool {
        self.filter.as_ref().is_none_or(|f| eval(f, get))
    }

    /// ORDER BY over two records.
    pub fn compare<'a, 'b>(&self, a: &impl Fn(C) -> V<'a>, b: &impl Fn(C) -> V<'b>) -> Ordering {
        self.order
            .iter()
            .map(|k| cmp_field(a(k.field), b(k.field), k))
            .find(|o| *o != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
    }

    /// OFFSET and LIMIT over ordered hits. Not `offset + limit`, which a LIMIT near `usize::MAX`
    /// overflows.
    pub fn window<T>(&self, hits: Vec<T>) -> Vec<T> {
        hits.into_iter()
            .skip(self.offset)
            .take(self.limit.unwrap_or(usize::MAX))
            .collect()
    }

    /// The ids a top-level `col = 'id'` or `col IN ('id', …)` (alone or in a top-level AND)
    /// restricts `col` to, in canonical 15-char form: lets a store answer from an index.
    pub fn id_restriction(&self, col: C) -> Option<Vec<&str>> {
        fn lit_ids(lits: &[Lit]) -> Option<Vec<&str>> {
            lits.iter()
                .map(|l| match l {
                    Lit::Id(c) => Some(c.as_str()),
                    _ => None,
                })
                .collect()
        }
        fn pick<C: Column>(e: &Expr<C>, col: C) -> Option<Vec<&str>> {
            match e {
                Expr::Cmp {
                    field,
                    op: CmpOp::Eq,
                    lit,
                } if *field == col => lit_ids(std::slice::from_ref(lit)),
                Expr::In {
                    field,
                    lits,
                    negated: false,
                } if *field == col => lit_ids(lits),
                _ => None,
            }
        }
        match self.filter.as_ref()? {
            Expr::And(items) => items.iter().find_map(|e| pick(e, col)),
            e => pick(e, col),
        }
    }
}

impl Query<Field> {
    /// Parses a query over `User`.
    pub fn parse(src: &str) -> Result<Query, SoqlError> {
        Self::parse_with(src, "User", &resolve_user)
    }

    /// The indexes of the matching users, ordered, after OFFSET and LIMIT. A WHERE that names
    /// ids (`Id IN (…)`, `Id >= '…' AND Id < '…'`) reads only those users, from the id index.
    pub fn run(&self, org: &Org) -> Vec<u32> {
        let rows: Vec<usize> = if let Some(ids) = self.id_restriction(super::schema::idx::ID) {
            let mut rows: Vec<usize> = ids.iter().filter_map(|id| org.find(id)).collect();
            rows.sort_unstable();
            rows.dedup();
            rows
        } else if let Some(range) = self.id_range(super::schema::idx::ID) {
            let mut rows: Vec<usize> = org.users_in_id_range(range).collect();
            rows.sort_unstable();
            rows
        } else {
            (0..org.users.len()).collect()
        };
        let mut hits: Vec<(u32, &Record)> = rows
            .into_iter()
            .filter_map(|i| Some((u32::try_from(i).ok()?, org.users.get(i)?)))
            .filter(|(_, r)| self.matches(&|f| r[f].view()))
            .collect();
        if !self.order.is_empty() {
            // Stable: ties keep creation order, like Salesforce's usual (unguaranteed) order.
            hits.sort_by(|(_, ra), (_, rb)| self.compare(&|f| ra[f].view(), &|f| rb[f].view()));
        }
        self.window(hits).into_iter().map(|(i, _)| i).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::idx;
    use chrono::TimeZone;

    fn org() -> Org {
        crate::seed::generate(50, 3, Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap())
    }

    #[test]
    fn parses_select_list_case_insensitively() {
        let q = Query::parse("select id, USERNAME , lastname from user").unwrap();
        assert_eq!(q.fields, vec![idx::ID, idx::USERNAME, idx::LAST_NAME]);
        assert!(!q.count_only);
        let q = Query::parse("SELECT COUNT() FROM User").unwrap();
        assert!(q.count_only);
    }

    #[test]
    fn parses_where_order_limit_offset() {
        let q = Query::parse(
            "SELECT Id FROM User WHERE (IsActive = true AND Email LIKE '%@mail.example.com') OR NOT Username IN ('a@b.c', 'd@e.f') ORDER BY LastName DESC NULLS FIRST, Id LIMIT 10 OFFSET 5",
        )
        .unwrap();
        assert_eq!(q.limit, Some(10));
        assert_eq!(q.offset, 5);
        assert_eq!(q.order.len(), 2);
        assert!(q.order[0].desc && q.order[0].nulls_first);
        assert!(!q.order[1].desc && q.order[1].nulls_first);
    }

    #[test]
    fn datetime_literals_with_offsets() {
        let q =
            Query::parse("SELECT Id FROM User WHERE SystemModstamp >= 2024-01-01T01:00:00+01:00")
                .unwrap();
        let Some(Expr::Cmp {
            lit: Lit::DateTime(d),
            ..
        }) = q.filter
        else {
            panic!("{q:?}")
        };
        assert_eq!(d, Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap());
        assert!(
            Query::parse("SELECT Id FROM User WHERE CreatedDate > 2024-01-01T00:00:00Z").is_ok()
        );
        assert!(
            Query::parse("SELECT Id FROM User WHERE CreatedDate > 2024-01-01T00:00:00.000Z")
                .is_ok()
        );
    }

    #[test]
    fn string_escapes() {
        let q = Query::parse(r"SELECT Id FROM User WHERE LastName = 'O\'Brien'").unwrap();
        let Some(Expr::Cmp {
            lit: Lit::Text(t), ..
        }) = q.filter
        else {
            panic!()
        };
        assert_eq!(t, "O'Brien");
    }

    fn text_of(soql: &str) -> Result<String, SoqlError> {
        match Query::parse(soql)?.filter {
            Some(Expr::Cmp {
                lit: Lit::Text(t), ..
            }) => Ok(t),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn exactly_the_documented_escapes() {
        let t = text_of(r"SELECT Id FROM User WHERE LastName = 'a\nb\Nc\rd\Re\tf\Tg\bh\Bi\fj\Fk'")
            .unwrap();
        assert_eq!(t, "a\nb\nc\rd\re\tf\tg\u{8}h\u{8}i\u{c}j\u{c}k");
        let t = text_of(
            r#"SELECT Id FROM User WHERE LastName = '\"\'\\\u00e9\u0000\uD83D\uDE00\u0025'"#,
        )
        .unwrap();
        assert_eq!(t, "\"'\\é\u{0}😀%");
        for bad in [
            r"SELECT Id FROM User WHERE LastName = 'a\x'",
            r"SELECT Id FROM User WHERE LastName = 'a\u12'",
            r"SELECT Id FROM User WHERE LastName = 'a\uD83D'",
            r"SELECT Id FROM User WHERE LastName = 'a\uDE00'",
            // LIKE's escapes outside LIKE.
            r"SELECT Id FROM User WHERE LastName = 'a\%'",
            r"SELECT Id FROM User WHERE LastName IN ('a', 'b\_')",
        ] {
            let e = Query::parse(bad).unwrap_err();
            assert_eq!(e.code, "MALFORMED_QUERY", "{bad}");
        }
        assert!(Query::parse(r"SELECT Id FROM User WHERE LastName like 'a\%\_'").is_ok());
    }

    #[test]
    fn raw_control_characters_and_overlong_strings_are_refused() {
        for c in ['\n', '\u{0}', '\u{1}', '\u{7f}', '\u{85}'] {
            let e = text_of(&format!("SELECT Id FROM User WHERE LastName = 'a{c}b'")).unwrap_err();
            assert_eq!(e.code, "MALFORMED_QUERY", "{c:?}");
            assert!(
                e.message.contains("Unescaped control character"),
                "{}",
                e.message
            );
        }
        let fits = "x".repeat(MAX_WHERE_STRING);
        assert!(text_of(&format!("SELECT Id FROM User WHERE LastName = '{fits}'")).is_ok());
        let e = text_of(&format!("SELECT Id FROM User WHERE LastName = '{fits}x'")).unwrap_err();
        assert_eq!(e.code, "MALFORMED_QUERY");
    }

    #[test]
    fn errors_have_salesforce_codes_and_positions() {
        let e = Query::parse("SELECT Id, Foo FROM User").unwrap_err();
        assert_eq!(e.code, "INVALID_FIELD");
        assert!(
            e.message.contains("ERROR at Row:1:Column:12"),
            "{}",
            e.message
        );
        assert!(e.message.contains("No such column 'Foo' on entity 'User'"));
        let e = Query::parse("SELECT Id FROM User WHERE").unwrap_err();
        assert_eq!(e.code, "MALFORMED_QUERY");
        assert!(
            e.message.ends_with("unexpected token: <EOF>"),
            "{}",
            e.message
        );
        let e = Query::parse("SELECT Id FROM Account").unwrap_err();
        assert_eq!(e.code, "INVALID_TYPE");
        let e = Query::parse(
            "SELECT Id FROM User WHERE IsActive = true AND LastName = 'x' OR Id = null",
        )
        .unwrap_err();
        assert_eq!(e.code, "MALFORMED_QUERY");
        assert!(
            e.message.ends_with("unexpected token: 'OR'"),
            "{}",
            e.message
        );
        let e = Query::parse("SELECT Id FROM User WHERE IsActive = 'true'").unwrap_err();
        assert_eq!(e.code, "INVALID_FIELD");
        assert!(
            e.message
                .contains("must be of type boolean and should not be enclosed in quotes")
        );
        let e = Query::parse("SELECT Id FROM User WHERE LastName = 5").unwrap_err();
        assert!(
            e.message
                .contains("must be of type string and should be enclosed in quotes")
        );
        let e = Query::parse("SELECT Id, id FROM User").unwrap_err();
        assert!(e.message.ends_with("duplicate field selected: Id"));
        let e = Query::parse("SELECT Profile.Name FROM User").unwrap_err();
        assert_eq!(e.code, "INVALID_FIELD");
        let e = Query::parse("SELECT Id FROM User WHERE Id = 'nope'").unwrap_err();
        assert_eq!(e.code, "INVALID_QUERY_FILTER_OPERATOR");
        let e = Query::parse("SELECT Id FROM User LIMIT x").unwrap_err();
        assert_eq!(e.code, "MALFORMED_QUERY");
    }

    #[test]
    fn evaluates_filters_and_order() {
        let org = org();
        let all = Query::parse("SELECT Id FROM User").unwrap().run(&org);
        assert_eq!(all.len(), 50);
        let inactive = Query::parse("SELECT Id FROM User WHERE IsActive = false")
            .unwrap()
            .run(&org);
        let active = Query::parse("SELECT Id FROM User WHERE NOT IsActive = false")
            .unwrap()
            .run(&org);
        assert_eq!(inactive.len() + active.len(), 50);
        let auto = Query::parse("SELECT Id FROM User WHERE Email LIKE 'AUTOPROC%'")
            .unwrap()
            .run(&org);
        assert_eq!(auto.len(), 1);
        let not_auto = Query::parse("SELECT Id FROM User WHERE NOT Email LIKE 'autoproc%'")
            .unwrap()
            .run(&org);
        assert_eq!(not_auto.len(), 49);
        let first = &org.users[0];
        let id = first[idx::ID].as_str().unwrap();
        let by_id15 = Query::parse(&format!("SELECT Id FROM User WHERE Id = '{}'", &id[..15]))
            .unwrap()
            .run(&org);
        assert_eq!(by_id15, vec![0]);
        let by_in = Query::parse(&format!(
            "SELECT Id FROM User WHERE Id IN ('{id}', '005000000000000AAA')"
        ))
        .unwrap()
        .run(&org);
        assert_eq!(by_in, vec![0]);
        let not_in = Query::parse(&format!("SELECT Id FROM User WHERE Id NOT IN ('{id}')"))
            .unwrap()
            .run(&org);
        assert_eq!(not_in.len(), 49);
        let sorted = Query::parse("SELECT Id FROM User ORDER BY Username DESC LIMIT 5")
            .unwrap()
            .run(&org);
        assert_eq!(sorted.len(), 5);
        for w in sorted.windows(2) {
            let a = org.users[w[0] as usize][idx::USERNAME]
                .as_str()
                .unwrap()
                .to_lowercase();
            let b = org.users[w[1] as usize][idx::USERNAME]
                .as_str()
                .unwrap()
                .to_lowercase();
            assert!(a >= b);
        }
        let paged = Query::parse("SELECT Id FROM User ORDER BY Id LIMIT 10 OFFSET 45")
            .unwrap()
            .run(&org);
        assert_eq!(paged.len(), 5);
        let nulls = Query::parse("SELECT Id FROM User WHERE FirstName = null")
            .unwrap()
            .run(&org);
        assert_eq!(
            nulls.len(),
            1,
            "only the Automated Process user has no first name"
        );
        let dated = Query::parse("SELECT Id FROM User WHERE CreatedDate > 2000-01-01T00:00:00Z AND CreatedDate < 2100-01-01T00:00:00Z").unwrap().run(&org);
        assert_eq!(dated.len(), 50);
    }

    #[test]
    fn a_limit_near_usize_max_does_not_overflow() {
        let q = format!("SELECT Id FROM User LIMIT {} OFFSET 45", usize::MAX);
        assert_eq!(Query::parse(&q).unwrap().run(&org()).len(), 5);
    }

    #[test]
    fn like_patterns() {
        let p = like_pattern("a%c_e");
        assert!(like_match(&p, "ABxyzCde"));
        assert!(!like_match(&p, "abce"));
        assert!(like_match(&like_pattern("%"), ""));
        assert!(like_match(&like_pattern("100\\%"), "100%"));
        assert!(!like_match(&like_pattern("100\\%"), "1000"));
    }

    #[test]
    fn backslashes_stay_distinct_from_like_escapes() {
        // SOQL `'a\\%'` is a literal backslash then a wildcard; `'a\%'` a literal percent sign.
        let lexed =
            |soql: &str| match Lexer::run(soql)
                .unwrap()
                .into_iter()
                .find_map(|(t, _)| match t {
                    Tok::Str(s) => Some(s),
                    _ => None,
                }) {
                Some(s) => s,
                None => panic!("no string in {soql}"),
            };
        let backslash_then_any = lexed(r"SELECT Id FROM User WHERE LastName LIKE 'a\\%'");
        assert!(like_match(&like_pattern(&backslash_then_any), r"a\xyz"));
        assert!(!like_match(&like_pattern(&backslash_then_any), "a%"));
        let percent = lexed(r"SELECT Id FROM User WHERE LastName LIKE 'a\%'");
        assert!(like_match(&like_pattern(&percent), "a%"));
        assert!(!like_match(&like_pattern(&percent), r"a\%"));
        assert_eq!(unescape_outside_like(&backslash_then_any), r"a\%");
        assert_eq!(unescape_outside_like(&percent), "a%");
    }
}
