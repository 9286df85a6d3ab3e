//! The fstore definition language. Definitions are `*.sql` files in a folder that users
//! commit to git; this crate reads them, reports every mistake at `file:line:col` with a caret
//! snippet and a hint, and compiles them into registry objects.
//!
//! Lexing and expression parsing reuse sqlparser (the parser DataFusion uses), so expressions
//! are SQL; the DDL around them is parsed here. Expression types are checked by the registry's
//! shared expression compiler, the same one the engines evaluate with.

pub mod ast;
pub mod check;
pub mod diag;
pub mod error;
pub mod parse;

use std::path::{Path, PathBuf};

pub use diag::{Diagnostic, Diagnostics, Files};
pub use error::Error;
use fstore_registry::Definitions;

/// Compiles in-memory files (path, text); paths are only used in messages.
pub fn compile_files(files: Vec<(PathBuf, String)>) -> Result<Definitions, Diagnostics> {
    let mut stmts = Vec::new();
    let mut diags = Vec::new();
    for (i, (_, text)) in files.iter().enumerate() {
        let (s, d) = parse::parse_file(i, text);
        stmts.extend(s.into_iter().map(|s| (i, s)));
        diags.extend(d);
    }
    let files = Files { files };
    if !diags.is_empty() {
        // Name errors after syntax errors would mostly be noise from the skipped statements.
        return Err(Diagnostics {
            files,
            diagnostics: diags,
        });
    }
    let names = (0..files.files.len()).map(|i| files.name(i)).collect();
    match check::compile(&stmts, names) {
        Ok(defs) => Ok(defs),
        Err(d) => Err(Diagnostics {
            files,
            diagnostics: d,
        }),
    }
}

/// Reads every `*.sql` file under `dir` (recursively, in path order) and compiles them.
pub fn load_dir(dir: &Path) -> Result<Definitions, Error> {
    let mut paths = Vec::new();
    collect_sql(dir, &mut paths)?;
    if paths.is_empty() {
        return Err(Error::NoDefinitions(dir.to_path_buf()));
    }
    paths.sort();
    let mut files = Vec::new();
    for p in paths {
        let text = std::fs::read_to_string(&p).map_err(|source| Error::Read {
            path: p.clone(),
            source,
        })?;
        files.push((p, text));
    }
    compile_files(files).map_err(Error::Definitions)
}

fn collect_sql(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| Error::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect_sql(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "sql") {
            out.push(path);
        }
    }
    Ok(())
}
