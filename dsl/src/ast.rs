//! The syntax tree of definitions files, with positions for diagnostics.

use datafusion::sql::sqlparser::ast::Expr;
use fstore_registry::DataType;

use crate::diag::Pos;

/// A name as written, with where.
#[derive(Debug, Clone, PartialEq)]
pub struct Name {
    pub value: String,
    pub pos: Pos,
}

/// `name TYPE` in an entity or source.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    pub name: Name,
    pub dtype: DataType,
}

/// A value with the position it was written at.
#[derive(Debug, Clone, PartialEq)]
pub struct At<T> {
    pub value: T,
    pub pos: Pos,
}

/// One item of an `AS SELECT` list: `expr [OVER duration] [AS name]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectItem {
    pub expr: Expr,
    pub pos: Pos,
    pub over: Option<At<i64>>,
    pub alias: Option<Name>,
}

/// `JOIN group [AS alias] [ON (col, …)]`.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinClause {
    pub group: Name,
    pub alias: Option<Name>,
    pub keys: Option<Vec<Name>>,
}

/// One `CREATE …;` statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Stmt {
    Entity {
        name: Name,
        keys: Vec<ColumnDef>,
    },
    Source {
        name: Name,
        columns: Vec<ColumnDef>,
        event_time: Option<Name>,
        batch: Option<At<String>>,
        topic: Option<At<String>>,
    },
    Group {
        name: Name,
        entity: Name,
        source: Name,
        keys: Option<Vec<Name>>,
        ttl: Option<At<i64>>,
        version: Option<At<u32>>,
        tie_break: Vec<Name>,
        items: Vec<SelectItem>,
    },
    Spec {
        name: Name,
        source: Name,
        joins: Vec<JoinClause>,
        labels: Vec<Name>,
        items: Vec<SelectItem>,
    },
    Model {
        name: Name,
        spec: Name,
        inputs: Option<Vec<Name>>,
    },
}

impl Stmt {
    pub fn name(&self) -> &Name {
        match self {
            Stmt::Entity { name, .. }
            | Stmt::Source { name, .. }
            | Stmt::Group { name, .. }
            | Stmt::Spec { name, .. }
            | Stmt::Model { name, .. } => name,
        }
    }
}
