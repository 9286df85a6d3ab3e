//! The statement parser. sqlparser's tokenizer lexes the files and sqlparser's expression
//! parser parses every expression; this module parses the DDL around them:
//!
//! ```sql
//! CREATE ENTITY user KEY (user_id STRING);
//! CREATE SOURCE impressions (request_id INT64, user_id STRING, ts TIMESTAMP, clicked BOOLEAN)
//!     EVENT TIME ts BATCH PARQUET 'data/impressions.parquet' KAFKA TOPIC 'impressions';
//! CREATE FEATURE GROUP user_profile ON user FROM user_profile [KEY (col, …)] [TTL 30 DAYS]
//!     [VERSION 2] [TIE BREAK (col, …)] AS SELECT age, upper(city) AS city_upper;
//! CREATE FEATURE GROUP user_activity ON user FROM impressions
//!     AS SELECT COUNT(*) FILTER (WHERE clicked) OVER 7 DAYS AS user_clicks_7d;
//! CREATE SAMPLE SPEC ctr FROM impressions JOIN user_profile [AS a] [ON (user_id)] … LABEL (clicked)
//!     AS SELECT request_id, age, bucketize(age, 18, 30) AS age_bucket;
//! CREATE MODEL ctr_model USING ctr [INPUTS (age, age_bucket)];
//! ```

use datafusion::sql::sqlparser::ast::Expr;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};
use fstore_core::types::{TYPE_NAMES, duration_unit_micros};
use fstore_registry::DataType;

use crate::ast::*;
use crate::diag::{Diagnostic, Pos};

/// Parses one file into statements; a statement with a syntax error is reported and skipped.
pub fn parse_file(file: usize, text: &str) -> (Vec<Stmt>, Vec<Diagnostic>) {
    let dialect = GenericDialect {};
    let tokens = match Tokenizer::new(&dialect, text).tokenize_with_location() {
        Ok(t) => t,
        Err(e) => {
            let msg = e.message.clone();
            return (Vec::new(), vec![Diagnostic::new(Pos::at(file, e.location), format!("cannot read token: {msg}"))
                .hint("check quotes: strings use 'single quotes', names may use \"double quotes\"")]);
        }
    };
    let tokens: Vec<TokenWithSpan> = tokens
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect();
    let mut p = StmtParser { file, tokens, i: 0 };
    let mut stmts = Vec::new();
    let mut diags = Vec::new();
    while !p.at_eof() {
        if p.eat(&Token::SemiColon) {
            continue;
        }
        match p.statement() {
            Ok(s) => stmts.push(s),
            Err(d) => {
                diags.push(d);
                p.skip_statement();
            }
        }
    }
    (stmts, diags)
}

type PResult<T> = Result<T, Diagnostic>;

struct StmtParser {
    file: usize,
    tokens: Vec<TokenWithSpan>,
    i: usize,
}

const STATEMENT_KINDS: &str = "ENTITY, SOURCE, FEATURE GROUP, SAMPLE SPEC, MODEL";

fn describe(t: &Token) -> String {
    match t {
        Token::EOF => "end of file".into(),
        Token::Word(w) if w.quote_style.is_some() => format!("name {w}"),
        Token::Word(w) => format!("\"{}\"", w.value),
        Token::SingleQuotedString(s) => format!("string '{s}'"),
        Token::Number(n, _) => format!("number {n}"),
        other => format!("\"{other}\""),
    }
}

impl StmtParser {
    fn peek(&self) -> &TokenWithSpan {
        static EOF: std::sync::LazyLock<TokenWithSpan> =
            std::sync::LazyLock::new(TokenWithSpan::new_eof);
        self.tokens.get(self.i).unwrap_or(&EOF)
    }

    fn at_eof(&self) -> bool {
        self.i >= self.tokens.len() || matches!(self.peek().token, Token::EOF)
    }

    /// The position of the next token, or just after the last one at the end of the file.
    fn pos(&self) -> Pos {
        if let Some(t) = self.tokens.get(self.i).filter(|t| t.span.start.line > 0) {
            return Pos::from_span(self.file, t.span);
        }
        match self.tokens.iter().rev().find(|t| t.span.start.line > 0) {
            Some(last) => Pos {
                file: self.file,
                line: last.span.end.line,
                col: last.span.end.column,
                end_col: last.span.end.column + 1,
            },
            None => Pos {
                file: self.file,
                line: 1,
                col: 1,
                end_col: 2,
            },
        }
    }

    fn err(&self, expected: &str) -> Diagnostic {
        Diagnostic::new(
            self.pos(),
            format!(
                "expected {expected}, found {}",
                describe(&self.peek().token)
            ),
        )
    }

    fn advance(&mut self) -> TokenWithSpan {
        let t = self.peek().clone();
        self.i += 1;
        t
    }

    fn eat(&mut self, t: &Token) -> bool {
        if &self.peek().token == t {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, t: Token) -> PResult<()> {
        if self.eat(&t) {
            Ok(())
        } else {
            Err(self.err(&format!("\"{t}\"")))
        }
    }

    fn is_word(t: &Token, kw: &str) -> bool {
        matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(kw))
    }

    fn at_word(&self, kw: &str) -> bool {
        Self::is_word(&self.peek().token, kw)
    }

    fn eat_word(&mut self, kw: &str) -> bool {
        if self.at_word(kw) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect_word(&mut self, kw: &str) -> PResult<()> {
        if self.eat_word(kw) {
            Ok(())
        } else {
            Err(self.err(kw))
        }
    }

    fn name(&mut self, what: &str) -> PResult<Name> {
        let pos = self.pos();
        match &self.peek().token {
            Token::Word(w) => {
                let value = w.value.clone();
                if value.is_empty() {
                    return Err(Diagnostic::new(pos, format!("{what} must not be empty")));
                }
                self.i += 1;
                Ok(Name { value, pos })
            }
            _ => Err(self.err(what)),
        }
    }

    /// `(a, b, …)` or a single bare name.
    fn name_list(&mut self, what: &str) -> PResult<Vec<Name>> {
        if !self.eat(&Token::LParen) {
            return Ok(vec![self.name(what)?]);
        }
        let mut out = vec![self.name(what)?];
        while self.eat(&Token::Comma) {
            out.push(self.name(what)?);
        }
        self.expect(Token::RParen)?;
        Ok(out)
    }

    fn string(&mut self, what: &str) -> PResult<At<String>> {
        let pos = self.pos();
        match &self.peek().token {
            Token::SingleQuotedString(s) => {
                let value = s.clone();
                self.i += 1;
                Ok(At { value, pos })
            }
            _ => Err(self.err(&format!("{what} as a 'quoted string'"))),
        }
    }

    fn integer(&mut self, what: &str) -> PResult<At<i64>> {
        let pos = self.pos();
        match &self.peek().token {
            Token::Number(n, _) => {
                let value = n.parse::<i64>().map_err(|_| {
                    Diagnostic::new(pos, format!("{what} must be a whole number, found {n}"))
                        .hint("write e.g. 7 DAYS or 90 MINUTES")
                })?;
                self.i += 1;
                Ok(At { value, pos })
            }
            _ => Err(self.err(what)),
        }
    }

    /// `N UNIT`, e.g. `7 DAYS`, in microseconds.
    fn duration(&mut self, what: &str) -> PResult<At<i64>> {
        let n = self.integer(what)?;
        let unit_pos = self.pos();
        let unit = match &self.peek().token {
            Token::Word(w) if w.quote_style.is_none() => w.value.clone(),
            _ => return Err(self.err("a time unit (SECONDS, MINUTES, HOURS, DAYS, WEEKS)")),
        };
        let Some(per) = duration_unit_micros(&unit) else {
            return Err(
                Diagnostic::new(unit_pos, format!("unknown time unit \"{unit}\""))
                    .hint("use MICROSECONDS, MILLISECONDS, SECONDS, MINUTES, HOURS, DAYS or WEEKS"),
            );
        };
        self.i += 1;
        if n.value <= 0 {
            return Err(Diagnostic::new(
                n.pos,
                format!("{what} must be positive, got {}", n.value),
            ));
        }
        let value = n
            .value
            .checked_mul(per)
            .ok_or_else(|| Diagnostic::new(n.pos, format!("{what} is too long")))?;
        Ok(At {
            value,
            pos: Pos {
                end_col: unit_pos.end_col,
                ..n.pos
            },
        })
    }

    fn data_type(&mut self) -> PResult<DataType> {
        let pos = self.pos();
        let word = match &self.peek().token {
            Token::Word(w) if w.quote_style.is_none() => w.value.clone(),
            _ => return Err(self.err(&format!("a type ({TYPE_NAMES})"))),
        };
        self.i += 1;
        if word.eq_ignore_ascii_case("LIST") || word.eq_ignore_ascii_case("ARRAY") {
            self.expect(Token::Lt)
                .map_err(|d| d.hint("write LIST<INT64>"))?;
            // `LIST<LIST<INT64>>` lexes its end as `>>`.
            let inner = self.data_type()?;
            if self.eat(&Token::ShiftRight) {
                self.tokens.insert(self.i, TokenWithSpan::wrap(Token::Gt));
            } else {
                self.expect(Token::Gt)?;
            }
            return Ok(DataType::List(Box::new(inner)));
        }
        word.parse::<DataType>()
            .map_err(|e| Diagnostic::new(pos, e))
    }

    fn column_defs(&mut self) -> PResult<Vec<ColumnDef>> {
        self.expect(Token::LParen)?;
        let mut out = Vec::new();
        loop {
            let name = self.name("a column name")?;
            let dtype = self.data_type()?;
            out.push(ColumnDef { name, dtype });
            if self.eat(&Token::Comma) {
                if self.at(&Token::RParen) {
                    return Err(Diagnostic::new(self.pos(), "trailing comma before \")\"")
                        .hint("remove the last comma"));
                }
                continue;
            }
            self.expect(Token::RParen)?;
            return Ok(out);
        }
    }

    fn at(&self, t: &Token) -> bool {
        &self.peek().token == t
    }

    fn skip_statement(&mut self) {
        while !self.at_eof() {
            if self.advance().token == Token::SemiColon {
                return;
            }
        }
    }

    fn end_statement(&mut self, clauses: &str) -> PResult<()> {
        if self.eat(&Token::SemiColon) || self.at_eof() {
            return Ok(());
        }
        Err(self
            .err(&format!("{clauses} or \";\""))
            .hint("end each statement with ;"))
    }

    fn statement(&mut self) -> PResult<Stmt> {
        if !self.eat_word("CREATE") {
            return Err(self
                .err("CREATE")
                .hint(format!("every statement is CREATE {STATEMENT_KINDS}")));
        }
        if self.eat_word("ENTITY") {
            self.entity()
        } else if self.eat_word("SOURCE") {
            self.source()
        } else if self.at_word("FEATURE") {
            self.i += 1;
            self.expect_word("GROUP")?;
            self.group()
        } else if self.at_word("SAMPLE") {
            self.i += 1;
            self.expect_word("SPEC")?;
            self.spec()
        } else if self.eat_word("MODEL") {
            self.model()
        } else {
            Err(self.err(STATEMENT_KINDS))
        }
    }

    fn entity(&mut self) -> PResult<Stmt> {
        let name = self.name("an entity name")?;
        self.expect_word("KEY")
            .map_err(|d| d.hint("write CREATE ENTITY user KEY (user_id STRING)"))?;
        let keys = self.column_defs()?;
        if !(self.eat(&Token::SemiColon) || self.at_eof()) {
            return Err(self
                .err("\";\" after the entity's KEY (…)")
                .hint("end each statement with ;"));
        }
        Ok(Stmt::Entity { name, keys })
    }

    fn source(&mut self) -> PResult<Stmt> {
        let name = self.name("a source name")?;
        let columns = self.column_defs()?;
        let (mut event_time, mut batch, mut topic) = (None, None, None);
        loop {
            let pos = self.pos();
            if self.eat_word("EVENT") {
                self.expect_word("TIME")?;
                once(&event_time, pos, "EVENT TIME")?;
                if ["KAFKA", "BATCH", "EVENT"].iter().any(|k| self.at_word(k))
                    || self.at(&Token::SemiColon)
                {
                    return Err(self
                        .err("the event time column after EVENT TIME")
                        .hint("write EVENT TIME ts, naming a TIMESTAMP column"));
                }
                event_time = Some(self.name("the event time column")?);
            } else if self.eat_word("BATCH") {
                once(&batch, pos, "BATCH")?;
                self.expect_word("PARQUET")
                    .map_err(|d| d.hint("write BATCH PARQUET 'path/*.parquet'"))?;
                batch = Some(self.string("the Parquet location")?);
            } else if self.eat_word("KAFKA") {
                once(&topic, pos, "KAFKA TOPIC")?;
                self.expect_word("TOPIC")?;
                topic = Some(self.string("the topic name")?);
            } else {
                break;
            }
        }
        self.end_statement("EVENT TIME, BATCH PARQUET, KAFKA TOPIC")?;
        Ok(Stmt::Source {
            name,
            columns,
            event_time,
            batch,
            topic,
        })
    }

    fn group(&mut self) -> PResult<Stmt> {
        let name = self.name("a feature group name")?;
        self.expect_word("ON")
            .map_err(|d| d.hint("write CREATE FEATURE GROUP name ON entity FROM source …"))?;
        let entity = self.name("an entity name")?;
        self.expect_word("FROM")?;
        let source = self.name("a source name")?;
        let (mut keys, mut ttl, mut version, mut tie_break) = (None, None, None, None);
        loop {
            let pos = self.pos();
            if self.eat_word("KEY") {
                once(&keys, pos, "KEY")?;
                keys = Some(self.name_list("a key column")?);
            } else if self.eat_word("TTL") {
                once(&ttl, pos, "TTL")?;
                ttl = Some(self.duration("TTL")?);
            } else if self.eat_word("VERSION") {
                once(&version, pos, "VERSION")?;
                let v = self.integer("a version number")?;
                let value = u32::try_from(v.value)
                    .ok()
                    .filter(|v| *v >= 1)
                    .ok_or_else(|| {
                        Diagnostic::new(
                            v.pos,
                            format!(
                                "version must be between 1 and {}, got {}",
                                u32::MAX,
                                v.value
                            ),
                        )
                    })?;
                version = Some(At { value, pos: v.pos });
            } else if self.eat_word("TIE") {
                once(&tie_break, pos, "TIE BREAK")?;
                self.expect_word("BREAK")?;
                tie_break = Some(self.name_list("a tie-break column")?);
            } else {
                break;
            }
        }
        self.expect_word("AS").map_err(|d| {
            d.hint("the features follow AS SELECT …; clauses are KEY, TTL, VERSION, TIE BREAK")
        })?;
        self.eat_word("SELECT");
        let items = self.select_items(true)?;
        self.end_statement("\",\"")?;
        Ok(Stmt::Group {
            name,
            entity,
            source,
            keys,
            ttl,
            version,
            tie_break: tie_break.unwrap_or_default(),
            items,
        })
    }

    fn spec(&mut self) -> PResult<Stmt> {
        let name = self.name("a sample spec name")?;
        self.expect_word("FROM").map_err(|d| {
            d.hint("write CREATE SAMPLE SPEC name FROM events JOIN group … AS SELECT …")
        })?;
        let source = self.name("the event source")?;
        let mut joins = Vec::new();
        let mut labels: Option<Vec<Name>> = None;
        loop {
            let pos = self.pos();
            if self.eat_word("JOIN") {
                let group = self.name("a feature group name")?;
                let alias = if self.eat_word("AS") {
                    Some(self.name("a join alias")?)
                } else {
                    None
                };
                let keys = if self.eat_word("ON") {
                    Some(self.name_list("an event column")?)
                } else {
                    None
                };
                joins.push(JoinClause { group, alias, keys });
            } else if self.eat_word("LABEL") {
                once(&labels, pos, "LABEL")?;
                labels = Some(self.name_list("a label column")?);
            } else {
                break;
            }
        }
        self.expect_word("AS")
            .map_err(|d| d.hint("the columns follow AS SELECT …; clauses are JOIN and LABEL"))?;
        self.eat_word("SELECT");
        let items = self.select_items(false)?;
        self.end_statement("\",\"")?;
        Ok(Stmt::Spec {
            name,
            source,
            joins,
            labels: labels.unwrap_or_default(),
            items,
        })
    }

    fn model(&mut self) -> PResult<Stmt> {
        let name = self.name("a model name")?;
        self.expect_word("USING")
            .map_err(|d| d.hint("write CREATE MODEL name USING sample_spec"))?;
        let spec = self.name("a sample spec name")?;
        let inputs = if self.eat_word("INPUTS") {
            Some(self.name_list("an input column")?)
        } else {
            None
        };
        self.end_statement("INPUTS")?;
        Ok(Stmt::Model { name, spec, inputs })
    }

    /// Items up to the end of the statement, split at top-level commas; each is
    /// `expr [OVER duration] [AS name]`.
    fn select_items(&mut self, allow_over: bool) -> PResult<Vec<SelectItem>> {
        let mut items = Vec::new();
        loop {
            let start = self.i;
            let mut depth = 0usize;
            let (mut over_at, mut as_at) = (None, None);
            while !self.at_eof() {
                match &self.peek().token {
                    Token::LParen | Token::LBracket => depth += 1,
                    Token::RParen | Token::RBracket => depth = depth.saturating_sub(1),
                    Token::Comma | Token::SemiColon if depth == 0 => break,
                    t if depth == 0 && Self::is_word(t, "OVER") && over_at.is_none() => {
                        over_at = Some(self.i)
                    }
                    t if depth == 0 && Self::is_word(t, "AS") => as_at = Some(self.i),
                    _ => {}
                }
                self.i += 1;
            }
            let end = self.i;
            if start == end {
                return Err(self
                    .err("a column expression")
                    .hint("remove a trailing comma, or add an expression"));
            }
            let expr_end = over_at.or(as_at).unwrap_or(end);
            let pos = Pos::from_span(self.file, self.tokens[start].span);
            let expr = self.sub_expr(start, expr_end)?;
            let over = match over_at {
                Some(o) => {
                    if !allow_over {
                        return Err(Diagnostic::new(
                            Pos::from_span(self.file, self.tokens[o].span),
                            "OVER is only allowed in feature groups",
                        )
                        .hint("define the window aggregate in a feature group and JOIN it"));
                    }
                    let mut sub = StmtParser {
                        file: self.file,
                        tokens: self.tokens[o + 1..as_at.unwrap_or(end)].to_vec(),
                        i: 0,
                    };
                    let d = sub.duration("window")?;
                    if !sub.at_eof() {
                        return Err(sub.err("AS or \",\" after the window"));
                    }
                    Some(d)
                }
                None => None,
            };
            let alias = match as_at {
                Some(a) => {
                    let mut sub = StmtParser {
                        file: self.file,
                        tokens: self.tokens[a + 1..end].to_vec(),
                        i: 0,
                    };
                    let n = sub.name("a column name after AS")?;
                    if !sub.at_eof() {
                        return Err(sub.err("\",\" or \";\" after the column name"));
                    }
                    Some(n)
                }
                None => None,
            };
            items.push(SelectItem {
                expr,
                pos,
                over,
                alias,
            });
            if !self.eat(&Token::Comma) {
                return Ok(items);
            }
        }
    }

    /// Parses tokens `[start, end)` as one expression with sqlparser.
    fn sub_expr(&self, start: usize, end: usize) -> PResult<Expr> {
        let mut tokens = self.tokens[start..end].to_vec();
        let eof_pos = Pos::from_span(self.file, self.tokens[end - 1].span);
        tokens.push(TokenWithSpan::new_eof());
        let dialect = GenericDialect {};
        let mut p = Parser::new(&dialect).with_tokens_with_locations(tokens);
        let expr = p.parse_expr().map_err(|e| self.expr_error(e, eof_pos))?;
        let next = p.peek_token();
        if next.token != Token::EOF {
            let pos = if next.span.start.line > 0 {
                Pos::from_span(self.file, next.span)
            } else {
                eof_pos
            };
            return Err(Diagnostic::new(
                pos,
                format!("unexpected {} after the expression", describe(&next.token)),
            )
            .hint("separate columns with \",\" and name them with AS"));
        }
        Ok(expr)
    }

    fn expr_error(&self, e: ParserError, fallback: Pos) -> Diagnostic {
        let msg = match &e {
            ParserError::TokenizerError(m) | ParserError::ParserError(m) => m.clone(),
            ParserError::RecursionLimitExceeded => "expression nested too deeply".into(),
        };
        // sqlparser appends " at Line: L, Column: C"; turn it into a position.
        let (text, pos) = match msg.rfind(" at Line: ") {
            Some(i) => {
                let loc = &msg[i + " at Line: ".len()..];
                let mut parts = loc.split(", Column: ");
                let line = parts.next().and_then(|l| l.trim().parse().ok());
                let col = parts.next().and_then(|c| c.trim().parse().ok());
                match (line, col) {
                    (Some(line), Some(col)) if line > 0 => (
                        msg[..i].to_string(),
                        Pos {
                            file: self.file,
                            line,
                            col,
                            end_col: col + 1,
                        },
                    ),
                    _ => (msg[..i].to_string(), fallback),
                }
            }
            None => (msg, fallback),
        };
        let text = text.replace("sql parser error: ", "");
        let text = if text.contains("found: EOF") {
            text.replace("found: EOF", "found: end of the expression")
        } else {
            text
        };
        Diagnostic::new(pos, format!("invalid expression: {}", text.trim()))
    }
}

fn once<T>(slot: &Option<T>, pos: Pos, clause: &str) -> PResult<()> {
    if slot.is_some() {
        return Err(Diagnostic::new(pos, format!("{clause} is given twice")).hint("keep one"));
    }
    Ok(())
}
