//! Diagnostics: an error at `file:line:col` with a caret snippet and a hint.

use std::fmt;
use std::path::PathBuf;

use datafusion::sql::sqlparser::tokenizer::{Location, Span};

/// A position range in one definitions file (lines and columns start at 1; columns count chars).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub file: usize,
    pub line: u64,
    pub col: u64,
    /// Exclusive end column on the same line (a single caret when unknown or on another line).
    pub end_col: u64,
}

impl Pos {
    pub fn from_span(file: usize, span: Span) -> Self {
        let Location { line, column } = span.start;
        let end_col = if span.end.line == line && span.end.column > column {
            span.end.column
        } else {
            column + 1
        };
        Pos {
            file,
            line,
            col: column,
            end_col,
        }
    }

    pub fn at(file: usize, loc: Location) -> Self {
        Pos {
            file,
            line: loc.line,
            col: loc.column,
            end_col: loc.column + 1,
        }
    }
}

/// One error in the definitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub pos: Pos,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(pos: Pos, message: impl Into<String>) -> Self {
        Diagnostic {
            pos,
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// The definitions files, for rendering diagnostics with their source lines.
#[derive(Debug, Clone, Default)]
pub struct Files {
    pub files: Vec<(PathBuf, String)>,
}

impl Files {
    pub fn name(&self, file: usize) -> String {
        self.files
            .get(file)
            .map(|(p, _)| p.display().to_string())
            .unwrap_or_else(|| "<input>".into())
    }

    /// `file:line:col`.
    pub fn location(&self, pos: Pos) -> String {
        format!("{}:{}:{}", self.name(pos.file), pos.line, pos.col)
    }

    /// Renders one diagnostic, rustc style.
    pub fn render(&self, d: &Diagnostic) -> String {
        let mut out = format!("error: {}\n  --> {}\n", d.message, self.location(d.pos));
        let line = self
            .files
            .get(d.pos.file)
            .and_then(|(_, text)| text.lines().nth(d.pos.line.saturating_sub(1) as usize));
        if let Some(line) = line {
            let num = d.pos.line.to_string();
            let pad = " ".repeat(num.len());
            let line = line.replace('\t', " ");
            let width = line.chars().count() as u64;
            let start = d.pos.col.max(1);
            let end = d.pos.end_col.max(start + 1).min(width.max(start) + 1);
            out.push_str(&format!(
                "{pad} |\n{num} | {line}\n{pad} | {}{}\n",
                " ".repeat((start - 1) as usize),
                "^".repeat((end - start).max(1) as usize)
            ));
        }
        if let Some(h) = &d.hint {
            out.push_str(&format!("  = hint: {h}\n"));
        }
        out
    }

    /// Renders every diagnostic, then a count.
    pub fn render_all(&self, diags: &[Diagnostic]) -> String {
        let mut out: String = diags.iter().map(|d| self.render(d) + "\n").collect();
        out.push_str(&format!(
            "{} error{} in the definitions\n",
            diags.len(),
            if diags.len() == 1 { "" } else { "s" }
        ));
        out
    }
}

/// Diagnostics with their files, as the error of loading a definitions folder.
#[derive(Debug)]
pub struct Diagnostics {
    pub files: Files,
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.files.render_all(&self.diagnostics))
    }
}

/// The closest candidate to `name` by edit distance, for "did you mean" hints.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = name.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&lower, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= (c.chars().count().max(name.chars().count()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// "known: a, b, c; did you mean "b"?".
pub fn known_hint<'a>(
    what: &str,
    name: &str,
    known: impl IntoIterator<Item = &'a str> + Clone,
) -> String {
    let list: Vec<&str> = known.clone().into_iter().collect();
    let mut h = if list.is_empty() {
        format!("no {what} is defined")
    } else {
        format!("known {what}: {}", list.join(", "))
    };
    if let Some(c) = closest(name, known) {
        h.push_str(&format!("; did you mean \"{c}\"?"));
    }
    h
}
