//! The scanner: one pass over JSON text that checks it is JSON as serde_json reads it and
//! decodes values by their columns' types. The rules of the encoding (which JSON each type
//! takes, and what a value that does not fit is told) are here and nowhere else.
//!
//! Scalars are read in place: strings without escapes as ranges of the text, numbers and
//! timestamps in their common forms without a library. Strings with escapes and lists are
//! built as values and set aside. serde_json is asked only for what it defines: the value of a string with
//! escapes, a number in a rare form, the JSON a message quotes, and why a text is not JSON.

use serde_json::Value as Json;

use super::time::read_timestamp;
use crate::codec::Value;
use crate::rows::ValueRef;
use crate::types::DataType;

/// The text is not JSON; serde_json words why.
#[derive(Debug)]
pub(super) struct NotJson;

type Step<T = ()> = Result<T, NotJson>;

/// How many containers a row may have open at once: as many as serde_json reads (the row's
/// object counts).
pub(super) const ROW_DEPTH: usize = 127;

/// A value as scanned for a column: read in place, or where the scan set it aside. Plain
/// data, so that the scan writes it straight into the row's cells.
#[derive(Debug, Clone, Copy)]
pub(super) enum Cell {
    Null,
    Boolean(bool),
    Int64(i64),
    Double(f64),
    /// A string without escapes: where it starts in the text, and its length (a longer string
    /// than `u32` counts is built instead).
    Str(usize, u32),
    Timestamp(i64),
    /// A value built (a string with escapes, a list): its place in [`Aside::values`].
    Built(usize),
    /// JSON that is not a value of the column's type: its place in [`Aside::unfit`], which
    /// says why (the column's error).
    Unfit(usize),
}

impl Cell {
    /// The value as read in place, borrowing the text; `None` for one set aside.
    pub(super) fn get(self, text: &str) -> Option<ValueRef<'_>> {
        Some(match self {
            Cell::Null => ValueRef::Null,
            Cell::Boolean(x) => ValueRef::Boolean(x),
            Cell::Int64(x) => ValueRef::Int64(x),
            Cell::Double(x) => ValueRef::Double(x),
            // Between quotes: on character boundaries.
            Cell::Str(from, len) => ValueRef::String(text.get(from..from + len as usize)?),
            Cell::Timestamp(x) => ValueRef::Timestamp(x),
            Cell::Built(_) | Cell::Unfit(_) => return None,
        })
    }

    /// The value, from `aside` if it was built (NULL for one that did not fit).
    pub(super) fn value(self, text: &str, aside: &Aside) -> Value {
        match self {
            Cell::Built(k) => aside.values[k].clone(),
            c => c.get(text).map_or(Value::Null, |v| v.to_owned()),
        }
    }

    /// [`Cell::value`], moving a built value out of `aside`.
    pub(super) fn take(self, text: &str, aside: &mut Aside) -> Value {
        match self {
            Cell::Built(k) => std::mem::replace(&mut aside.values[k], Value::Null),
            c => c.value(text, aside),
        }
    }
}

/// What a scan sets aside, so that cells stay small: the values it built, and why values did
/// not fit their columns.
#[derive(Debug, Clone, Default)]
pub(super) struct Aside {
    pub(super) values: Vec<Value>,
    pub(super) unfit: Vec<String>,
}

impl Aside {
    pub(super) fn clear(&mut self) {
        self.values.clear();
        self.unfit.clear();
    }

    fn built(&mut self, v: Value) -> Cell {
        self.values.push(v);
        Cell::Built(self.values.len() - 1)
    }

    fn unfit(&mut self, why: String) -> Cell {
        self.unfit.push(why);
        Cell::Unfit(self.unfit.len() - 1)
    }
}

/// A string as read: its content's range in the text, and whether the content has escapes
/// (then [`Scan::unescaped`] holds it unescaped, until the next string).
#[derive(Clone, Copy)]
struct Span {
    from: usize,
    to: usize,
    escaped: bool,
}

/// A number as serde_json reads it.
#[derive(Clone, Copy)]
enum Number {
    U64(u64),
    I64(i64),
    F64(f64),
}

/// The scanner's cursor over a text that is UTF-8.
pub(super) struct Scan<'t, 'a> {
    text: &'t str,
    b: &'t [u8],
    i: usize,
    /// Containers open now, and how many may be.
    depth: usize,
    limit: usize,
    /// The last string read with escapes, unescaped.
    unescaped: String,
    aside: &'a mut Aside,
}

impl<'t, 'a> Scan<'t, 'a> {
    /// A cursor at the start of `text`, refusing containers nested deeper than `limit`, setting
    /// values aside in `aside`.
    pub(super) fn new(text: &'t str, limit: usize, aside: &'a mut Aside) -> Self {
        Scan {
            text,
            b: text.as_bytes(),
            i: 0,
            depth: 0,
            limit,
            unescaped: String::new(),
            aside,
        }
    }

    pub(super) fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Step<u8> {
        let c = self.peek().ok_or(NotJson)?;
        self.i += 1;
        Ok(c)
    }

    fn eat(&mut self, c: u8) -> Step {
        if self.next()? == c {
            Ok(())
        } else {
            Err(NotJson)
        }
    }

    pub(super) fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// Whitespace to the end of the text, as after the row's value.
    pub(super) fn end(&mut self) -> Step {
        self.ws();
        if self.i == self.b.len() {
            Ok(())
        } else {
            Err(NotJson)
        }
    }

    fn literal(&mut self, word: &[u8]) -> Step {
        let end = self.i.checked_add(word.len()).ok_or(NotJson)?;
        if self.b.get(self.i..end) != Some(word) {
            return Err(NotJson);
        }
        self.i = end;
        Ok(())
    }

    /// Opens a container: one more level, within the limit.
    fn enter(&mut self) -> Step {
        if self.depth == self.limit {
            return Err(NotJson);
        }
        self.depth += 1;
        Ok(())
    }

    /// A string. Escapes are unescaped by serde_json, which also refuses the ones JSON does
    /// not allow (a lone surrogate among them).
    #[inline]
    fn string(&mut self) -> Step<Span> {
        let open = self.i;
        self.eat(b'"')?;
        let from = self.i;
        let len = self.b[from..]
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
            .ok_or(NotJson)?;
        self.i = from + len;
        if self.b[self.i] != b'"' {
            return self.escaped(open);
        }
        self.i += 1;
        Ok(Span {
            from,
            to: from + len,
            escaped: false,
        })
    }

    /// The rest of a string that has an escape (or a control character, which JSON does not
    /// allow in one) where the cursor is.
    #[cold]
    fn escaped(&mut self, open: usize) -> Step<Span> {
        loop {
            match self.next()? {
                b'"' => break,
                b'\\' => {
                    self.next()?;
                }
                c if c < 0x20 => return Err(NotJson),
                _ => {}
            }
        }
        let literal = self.text.get(open..self.i).ok_or(NotJson)?;
        self.unescaped = serde_json::from_str::<String>(literal).map_err(|_| NotJson)?;
        Ok(Span {
            from: open + 1,
            to: self.i - 1,
            escaped: true,
        })
    }

    /// A string's content, unescaped.
    fn content(&self, s: Span) -> &[u8] {
        if s.escaped {
            self.unescaped.as_bytes()
        } else {
            self.b.get(s.from..s.to).unwrap_or_default()
        }
    }

    /// A number as JSON writes it, read as serde_json reads it: an integer is a `u64`, or an
    /// `i64` when negative (`-0` is a double); anything else, and an integer out of those
    /// ranges, is a double; a double out of range is not JSON.
    #[inline(always)]
    fn number(&mut self) -> Step<Number> {
        let from = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return Err(NotJson),
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.i += 1;
            self.digit()?;
            self.digits();
            integer = false;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            self.digit()?;
            self.digits();
            integer = false;
        }
        let text = self.text.get(from..self.i).ok_or(NotJson)?;
        let common = if integer {
            match text.strip_prefix('-') {
                Some("0") => Some(Number::F64(-0.0)),
                Some(_) => text.parse().ok().map(Number::I64),
                None => text.parse().ok().map(Number::U64),
            }
        } else if text.len() <= 32 {
            // Correctly rounded, as serde_json's float_roundtrip parse.
            text.parse::<f64>()
                .ok()
                .filter(|d| d.is_finite())
                .map(Number::F64)
        } else {
            None
        };
        match common {
            Some(n) => Ok(n),
            None => Self::rare_number(text),
        }
    }

    /// A number in a form the common cases do not cover, as serde_json reads it.
    #[cold]
    fn rare_number(text: &str) -> Step<Number> {
        let n = serde_json::from_str::<serde_json::Number>(text).map_err(|_| NotJson)?;
        Ok(match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Number::U64(u),
            (None, Some(i), _) => Number::I64(i),
            (None, None, f) => Number::F64(f.ok_or(NotJson)?),
        })
    }

    fn digit(&mut self) -> Step {
        if self.next()?.is_ascii_digit() {
            Ok(())
        } else {
            Err(NotJson)
        }
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
    }

    /// A container from `open` to `close`, each of its items (elements or members) read by
    /// `item` (with the cursor at it), the items separated by commas.
    fn container(&mut self, open: u8, close: u8, mut item: impl FnMut(&mut Self) -> Step) -> Step {
        self.enter()?;
        self.eat(open)?;
        self.ws();
        if self.peek() == Some(close) {
            self.i += 1;
        } else {
            loop {
                item(self)?;
                self.ws();
                match self.next()? {
                    b',' => self.ws(),
                    c if c == close => break,
                    _ => return Err(NotJson),
                }
            }
        }
        self.depth -= 1;
        Ok(())
    }

    /// An array, each element read by `element` (with the cursor at it).
    fn array(&mut self, element: impl FnMut(&mut Self) -> Step) -> Step {
        self.container(b'[', b']', element)
    }

    /// An object, each member's value read by `member` (with the cursor at it) given the
    /// member's key.
    pub(super) fn object(&mut self, mut member: impl FnMut(&mut Self, &[u8]) -> Step) -> Step {
        let b = self.b;
        self.container(b'{', b'}', |p| {
            let key = p.string()?;
            let unescaped;
            let key = if key.escaped {
                unescaped = std::mem::take(&mut p.unescaped);
                unescaped.as_bytes()
            } else {
                b.get(key.from..key.to).unwrap_or_default()
            };
            p.ws();
            p.eat(b':')?;
            p.ws();
            member(p, key)
        })
    }

    /// Any value, checked as JSON and dropped.
    pub(super) fn skip(&mut self) -> Step {
        match self.peek() {
            Some(b'n') => self.literal(b"null"),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'"') => self.string().map(drop),
            Some(b'-' | b'0'..=b'9') => self.number().map(drop),
            Some(b'[') => self.array(Self::skip),
            Some(b'{') => self.object(|p, _| p.skip()),
            _ => Err(NotJson),
        }
    }

    /// A value of type `t`, into `cell` (written in place, where the caller keeps it).
    /// `null` is NULL in every type; a value of another type is the column's error
    /// (`expected T, got …`), and the scan goes on past it.
    #[inline(always)]
    pub(super) fn value(&mut self, t: &DataType, cell: &mut Cell) -> Step {
        let from = self.i;
        let fits = match self.peek() {
            Some(b'n') => {
                self.literal(b"null")?;
                *cell = Cell::Null;
                true
            }
            Some(c @ (b't' | b'f')) => {
                self.literal(if c == b't' { b"true" } else { b"false" })?;
                *cell = Cell::Boolean(c == b't');
                *t == DataType::Boolean
            }
            Some(b'"') => {
                let s = self.string()?;
                self.string_of(t, s, cell)
            }
            Some(b'-' | b'0'..=b'9') => {
                let n = self.number()?;
                Self::number_of(t, n, cell)
            }
            Some(c @ (b'[' | b'{')) => match t {
                DataType::List(inner) if c == b'[' => {
                    *cell = self.list(inner)?;
                    true
                }
                _ => {
                    self.skip()?;
                    false
                }
            },
            _ => return Err(NotJson),
        };
        if !fits {
            *cell = self.unfit(t, from);
        }
        Ok(())
    }

    /// The error of a value of another type than `t`, which began at `from`.
    #[cold]
    fn unfit(&mut self, t: &DataType, from: usize) -> Cell {
        let j = self.text.get(from..self.i).unwrap_or_default();
        let why = format!("expected {t}, got {}", short(j));
        self.aside.unfit(why)
    }

    /// A string as a value of type `t`, into `cell`: a STRING, a TIMESTAMP (RFC 3339; a
    /// string that is none is its own error), a DOUBLE that JSON numbers cannot write; `false`
    /// for a type that takes no strings.
    #[inline(always)]
    fn string_of(&mut self, t: &DataType, s: Span, cell: &mut Cell) -> bool {
        let content = self.content(s);
        *cell = match t {
            DataType::String if s.escaped => {
                let owned = std::mem::take(&mut self.unescaped);
                self.aside.built(Value::String(owned))
            }
            DataType::String => match u32::try_from(s.to - s.from) {
                Ok(len) => Cell::Str(s.from, len),
                Err(_) => {
                    let long = self.text.get(s.from..s.to).unwrap_or_default();
                    self.aside.built(Value::String(long.to_owned()))
                }
            },
            DataType::Timestamp => match read_timestamp(content) {
                Ok(us) => Cell::Timestamp(us),
                Err(why) => self.aside.unfit(why),
            },
            DataType::Double => match content {
                b"NaN" => Cell::Double(f64::NAN),
                b"Infinity" => Cell::Double(f64::INFINITY),
                b"-Infinity" => Cell::Double(f64::NEG_INFINITY),
                _ => return false,
            },
            _ => return false,
        };
        true
    }

    /// A number as a value of type `t`, into `cell`: an INT64 or a TIMESTAMP (epoch
    /// microseconds) when it is an integer in `i64`'s range, any number as a DOUBLE.
    fn number_of(t: &DataType, n: Number, cell: &mut Cell) -> bool {
        let integer = match n {
            Number::U64(u) => i64::try_from(u).ok(),
            Number::I64(i) => Some(i),
            Number::F64(_) => None,
        };
        match (t, integer) {
            (DataType::Int64, Some(i)) => *cell = Cell::Int64(i),
            (DataType::Timestamp, Some(i)) => *cell = Cell::Timestamp(i),
            (DataType::Double, _) => {
                *cell = Cell::Double(match n {
                    Number::U64(u) => u as f64,
                    Number::I64(i) => i as f64,
                    Number::F64(x) => x,
                })
            }
            _ => return false,
        }
        true
    }

    /// An array as a LIST of `inner`: each element a value of `inner`; the first that is not
    /// is the list's error (`element i: …`).
    fn list(&mut self, inner: &DataType) -> Step<Cell> {
        let mut items = Vec::new();
        let mut unfit = None;
        self.array(|p| {
            if unfit.is_some() {
                return p.skip();
            }
            let mut cell = Cell::Null;
            p.value(inner, &mut cell)?;
            match cell {
                Cell::Unfit(k) => {
                    let why = std::mem::take(&mut p.aside.unfit[k]);
                    unfit = Some(format!("element {}: {why}", items.len()));
                }
                c => items.push(c.take(p.text, p.aside)),
            }
            Ok(())
        })?;
        Ok(match unfit {
            None => self.aside.built(Value::List(items)),
            Some(why) => self.aside.unfit(why),
        })
    }
}

/// A value's JSON as serde_json writes it, cut at 40 characters: what errors quote.
pub(super) fn short(text: &str) -> String {
    let s = serde_json::from_str::<Json>(text).map_or_else(|_| text.to_owned(), |j| j.to_string());
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s
    }
}
