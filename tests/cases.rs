//! The case kit: each folder of `tests/cases/` is one edge case of the contract, run through
//! the batch engine, the streaming joiner and online serving (`fstore materialize` as of each
//! event's time, then `GetModelInputs` from `fstore serve`) and compared bit for bit with the
//! samples a
//! brute-force reference (below, written plainly, sharing none of the engines' join, window,
//! tie or assembly code) computes for it.
//!
//! A case folder holds:
//! - `defs/*.sql`: definitions with exactly one sample spec;
//! - `rows/SOURCE.jsonl`: each source's rows in its JSON encoding, in arrival order (the
//!   joiner reads the sources interleaved by event time, in steps of three messages);
//! - `expected.jsonl`: the samples, one JSON object per event in the spec's column order, in
//!   the order of the events' rows. `FSTORE_BLESS=1` rewrites it from the reference, for
//!   review; without it the test fails when the reference and the file disagree.
//!
//! Adding an edge case means adding a folder.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, RecordBatch};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use fstore_core::codec::Value;
use fstore_core::json::{decode_row, encode_row};
use fstore_core::rows::{ColumnBuilder, value_at};
use fstore_core::types::{Column, DataType};
use fstore_joiner::io::{Io, MemoryInput, MemoryOutlet, Message};
use fstore_joiner::{Instance, JoinConfig, Joiner, SinkTarget};
use fstore_registry::compiled::{CompiledSpec, plain_source_schema};
use fstore_registry::model::{Aggregate, Definitions, GroupKind, SampleSpec, Source};

struct Case {
    name: String,
    dir: PathBuf,
    defs: Definitions,
    spec: SampleSpec,
    /// Per source, its rows in file order.
    rows: BTreeMap<String, Vec<Vec<Value>>>,
}

fn cases() -> Vec<Case> {
    let root = crate::support::repo().join("tests/cases");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("defs").is_dir())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no case folders under {}", root.display());
    dirs.into_iter().map(|d| load(&d)).collect()
}

fn load(dir: &Path) -> Case {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let defs = fstore_dsl::load_dir(&dir.join("defs")).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(defs.specs.len(), 1, "{name}: one sample spec per case");
    let spec = defs.specs.values().next().unwrap().clone();
    let mut rows = BTreeMap::new();
    for source in defs.sources.values() {
        let path = dir.join("rows").join(format!("{}.jsonl", source.name));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let decoded = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                decode_row(&source.columns, l.as_bytes())
                    .unwrap_or_else(|e| panic!("{name}: {}: {e}: {l}", path.display()))
            })
            .collect();
        rows.insert(source.name.clone(), decoded);
    }
    Case {
        name,
        dir: dir.to_path_buf(),
        defs,
        spec,
        rows,
    }
}

fn column(name: &str, dtype: &DataType) -> Column {
    Column {
        name: name.to_string(),
        dtype: dtype.clone(),
    }
}

fn output_columns(spec: &SampleSpec) -> Vec<Column> {
    spec.columns
        .iter()
        .map(|c| column(&c.name, &c.dtype))
        .collect()
}

fn batch_of(
    columns: &[Column],
    rows: &[Vec<Value>],
    schema: arrow::datatypes::SchemaRef,
) -> RecordBatch {
    let arrays: Vec<ArrayRef> = columns
        .iter()
        .enumerate()
        .map(|(c, col)| {
            let mut b = ColumnBuilder::new(&col.dtype, rows.len());
            for r in rows {
                b.append(&r[c]).unwrap();
            }
            b.finish().unwrap()
        })
        .collect();
    RecordBatch::try_new(schema, arrays).unwrap()
}

fn rows_of(batch: &RecordBatch) -> Vec<Vec<Value>> {
    (0..batch.num_rows())
        .map(|r| {
            batch
                .columns()
                .iter()
                .map(|c| value_at(c, r).unwrap())
                .collect()
        })
        .collect()
}

// ---- the reference -------------------------------------------------------------------

/// NULL lowest, doubles in IEEE total order, strings by bytes, lists element-wise.
fn order(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::Boolean(x), Value::Boolean(y)) => x.cmp(y),
        (Value::Int64(x), Value::Int64(y)) | (Value::Timestamp(x), Value::Timestamp(y)) => x.cmp(y),
        (Value::Double(x), Value::Double(y)) => x.total_cmp(y),
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::List(x), Value::List(y)) => x
            .iter()
            .zip(y)
            .map(|(p, q)| order(p, q))
            .find(|o| o.is_ne())
            .unwrap_or(x.len().cmp(&y.len())),
        _ => panic!("comparing {a:?} with {b:?}"),
    }
}

fn order_all(a: &[Value], b: &[Value]) -> Ordering {
    a.iter()
        .zip(b)
        .map(|(p, q)| order(p, q))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// Evaluates SQL expressions over tables of values with plain DataFusion (fstore's SQL
/// functions registered, identifiers kept as written).
struct Sql {
    ctx: SessionContext,
}

impl Sql {
    fn new() -> Self {
        let mut config = SessionConfig::new();
        config.options_mut().sql_parser.enable_ident_normalization = false;
        let ctx = SessionContext::new_with_config(config);
        for f in fstore_core::functions::udfs() {
            ctx.register_udf(f.as_ref().clone());
        }
        Sql { ctx }
    }

    fn table(&self, name: &str, columns: &[Column], rows: &[Vec<Value>]) {
        let mut columns = columns.to_vec();
        columns.push(Column {
            name: "__row".into(),
            dtype: DataType::Int64,
        });
        let rows: Vec<Vec<Value>> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut r = r.clone();
                r.push(Value::Int64(i as i64));
                r
            })
            .collect();
        let schema = Arc::new(arrow::datatypes::Schema::new(
            columns
                .iter()
                .map(|c| arrow::datatypes::Field::new(&c.name, c.dtype.to_arrow(), true))
                .collect::<Vec<_>>(),
        ));
        let batch = batch_of(&columns, &rows, schema.clone());
        let _ = self.ctx.deregister_table(name);
        self.ctx
            .register_table(
                name,
                Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
            )
            .unwrap();
    }

    /// `SELECT exprs FROM from ORDER BY first.__row`; each result cast to its type, if any
    /// (timestamps and lists come out as they are).
    async fn select(
        &self,
        exprs: &[(String, Option<DataType>)],
        from: &str,
        first: &str,
    ) -> Vec<Vec<Value>> {
        if exprs.is_empty() {
            let sql = format!("SELECT count(*) FROM \"{first}\"");
            let n = self.ctx.sql(&sql).await.unwrap().collect().await.unwrap();
            let n = value_at(n[0].column(0), 0).unwrap();
            let Value::Int64(n) = n else { panic!("{n:?}") };
            return vec![Vec::new(); n as usize];
        }
        let list: Vec<String> = exprs
            .iter()
            .enumerate()
            .map(|(i, (e, t))| match t.as_ref().and_then(sql_type) {
                Some(t) => format!("CAST(({e}) AS {t}) AS __c{i}"),
                None => format!("({e}) AS __c{i}"),
            })
            .collect();
        let sql = format!(
            "SELECT {} FROM {from} ORDER BY \"{first}\".__row",
            list.join(", ")
        );
        let batches = self
            .ctx
            .sql(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        batches.iter().flat_map(rows_of).collect()
    }
}

fn sql_type(t: &DataType) -> Option<&'static str> {
    match t {
        DataType::Boolean => Some("BOOLEAN"),
        DataType::Int64 => Some("BIGINT"),
        DataType::Double => Some("DOUBLE"),
        DataType::String => Some("VARCHAR"),
        DataType::Timestamp | DataType::List(_) => None,
    }
}

/// One group's per-row values over its source: the row's key, event time, and for a row
/// group its tie order and features, for a window group per feature (input, passes).
struct GroupRows {
    key: Vec<Option<Vec<Value>>>,
    ts: Vec<Option<i64>>,
    values: Vec<Vec<Value>>,
}

async fn group_rows(
    sql: &Sql,
    source: &Source,
    rows: &[Vec<Value>],
    keys: &[String],
    exprs: &[(String, Option<DataType>)],
) -> GroupRows {
    sql.table(&source.name, &source.columns, rows);
    let values = sql
        .select(exprs, &format!("\"{}\"", source.name), &source.name)
        .await;
    let col = |n: &str| source.columns.iter().position(|c| c.name == n).unwrap();
    let ts_col = col(&source.event_time);
    let key_cols: Vec<usize> = keys.iter().map(|k| col(k)).collect();
    GroupRows {
        key: rows
            .iter()
            .map(|r| {
                let k: Vec<Value> = key_cols.iter().map(|&c| r[c].clone()).collect();
                (!k.contains(&Value::Null)).then_some(k)
            })
            .collect(),
        ts: rows
            .iter()
            .map(|r| match r[ts_col] {
                Value::Timestamp(t) => Some(t),
                _ => None,
            })
            .collect(),
        values,
    }
}

fn aggregate(agg: Aggregate, star: bool, values: &[&Value], dtype: &DataType) -> Value {
    let non_null: Vec<&Value> = values
        .iter()
        .copied()
        .filter(|v| **v != Value::Null)
        .collect();
    match agg {
        Aggregate::Count if star => Value::Int64(values.len() as i64),
        Aggregate::Count => Value::Int64(non_null.len() as i64),
        _ if agg != Aggregate::Last && non_null.is_empty() => Value::Null,
        Aggregate::Sum => match dtype {
            DataType::Int64 => Value::Int64(non_null.iter().fold(0i64, |s, v| match v {
                Value::Int64(x) => s.wrapping_add(*x),
                _ => s,
            })),
            _ => {
                let mut xs = non_null.iter().map(|v| match v {
                    Value::Double(x) => *x,
                    _ => panic!("{v:?}"),
                });
                let first = xs.next().unwrap();
                Value::Double(xs.fold(first, |s, x| s + x))
            }
        },
        Aggregate::Avg => {
            let mut xs = non_null.iter().map(|v| match v {
                Value::Double(x) => *x,
                Value::Int64(x) => *x as f64,
                _ => panic!("{v:?}"),
            });
            let first = xs.next().unwrap();
            Value::Double(xs.fold(first, |s, x| s + x) / non_null.len() as f64)
        }
        Aggregate::Min => (*non_null.iter().min_by(|a, b| order(a, b)).unwrap()).clone(),
        Aggregate::Max => {
            // The first of equal maxima (all equal in every bit that counts).
            let mut best = non_null[0];
            for v in &non_null[1..] {
                if order(v, best) == Ordering::Greater {
                    best = v;
                }
            }
            best.clone()
        }
        Aggregate::Last => values.last().map_or(Value::Null, |v| (*v).clone()),
    }
}

/// The samples of a case, computed from the contract's words.
async fn reference(case: &Case) -> Vec<Vec<Value>> {
    let sql = Sql::new();
    let defs = &case.defs;
    let spec = &case.spec;
    let events_src = &defs.sources[&spec.source];
    let events_all = &case.rows[&spec.source];
    let ets = events_src
        .columns
        .iter()
        .position(|c| c.name == events_src.event_time)
        .unwrap();
    // Events without an event time make no sample.
    let events: Vec<Vec<Value>> = events_all
        .iter()
        .filter(|r| r[ets] != Value::Null)
        .cloned()
        .collect();
    let event_ts = |e: &Vec<Value>| match e[ets] {
        Value::Timestamp(t) => t,
        _ => unreachable!(),
    };
    let mut feature_tables: Vec<(String, Vec<Column>, Vec<Vec<Value>>)> = Vec::new();
    for join in &spec.joins {
        let group = &defs.groups[&join.group];
        let source = &defs.sources[&group.source];
        let rows = &case.rows[&source.name];
        let ekeys: Vec<usize> = join
            .keys
            .iter()
            .map(|k| {
                events_src
                    .columns
                    .iter()
                    .position(|c| &c.name == k)
                    .unwrap()
            })
            .collect();
        let event_key = |e: &Vec<Value>| {
            let k: Vec<Value> = ekeys.iter().map(|&c| e[c].clone()).collect();
            (!k.contains(&Value::Null)).then_some(k)
        };
        let (columns, values): (Vec<Column>, Vec<Vec<Value>>) = match &group.kind {
            GroupKind::Row(r) => {
                let mut exprs: Vec<(String, Option<DataType>)> = r
                    .features
                    .iter()
                    .map(|f| (f.expr.clone(), Some(f.dtype.clone())))
                    .collect();
                for t in &r.tie_break {
                    exprs.push((format!("\"{t}\""), None));
                }
                let g = group_rows(&sql, source, rows, &group.keys, &exprs).await;
                let nf = r.features.len();
                let out = events
                    .iter()
                    .map(|e| {
                        let t = event_ts(e);
                        let k = event_key(e);
                        // The latest row at or before t; ties: TIE BREAK columns, then features.
                        let best = (0..rows.len())
                            .filter(|&i| k.is_some() && g.key[i] == k)
                            .filter(|&i| g.ts[i].is_some_and(|ts| ts <= t))
                            .max_by(|&a, &b| {
                                g.ts[a].cmp(&g.ts[b]).then_with(|| {
                                    let tie = |i: usize| {
                                        let mut v = g.values[i][nf..].to_vec();
                                        v.extend_from_slice(&g.values[i][..nf]);
                                        v
                                    };
                                    order_all(&tie(a), &tie(b))
                                })
                            });
                        match best {
                            Some(i) if r.ttl_us.is_none_or(|ttl| t - g.ts[i].unwrap() <= ttl) => {
                                g.values[i][..nf].to_vec()
                            }
                            _ => vec![Value::Null; nf],
                        }
                    })
                    .collect();
                (
                    r.features
                        .iter()
                        .map(|f| column(&f.name, &f.dtype))
                        .collect(),
                    out,
                )
            }
            GroupKind::Window(w) => {
                let mut exprs = Vec::new();
                let mut at = Vec::new();
                for f in &w.features {
                    let input = f.input.as_ref().map(|e| {
                        exprs.push((e.clone(), None));
                        exprs.len() - 1
                    });
                    let filter = f.filter.as_ref().map(|e| {
                        exprs.push((e.clone(), Some(DataType::Boolean)));
                        exprs.len() - 1
                    });
                    at.push((input, filter));
                }
                let g = group_rows(&sql, source, rows, &group.keys, &exprs).await;
                let out = events
                    .iter()
                    .map(|e| {
                        let t = event_ts(e);
                        let k = event_key(e);
                        w.features
                            .iter()
                            .zip(&at)
                            .map(|(f, (input, filter))| {
                                // Rows in [t - w, t), in event time then tie order (every
                                // feature's input and raw filter result), passing the filter.
                                let mut rows: Vec<usize> = (0..rows.len())
                                    .filter(|&i| k.is_some() && g.key[i] == k)
                                    .filter(|&i| {
                                        g.ts[i].is_some_and(|ts| ts >= t - f.window_us && ts < t)
                                    })
                                    .collect();
                                rows.sort_by(|&a, &b| {
                                    g.ts[a]
                                        .cmp(&g.ts[b])
                                        .then_with(|| order_all(&g.values[a], &g.values[b]))
                                });
                                let passing: Vec<&Value> = rows
                                    .iter()
                                    .filter(|&&i| {
                                        filter
                                            .is_none_or(|c| g.values[i][c] == Value::Boolean(true))
                                    })
                                    .map(|&i| match input {
                                        Some(c) => &g.values[i][*c],
                                        None => &Value::Boolean(true),
                                    })
                                    .collect();
                                aggregate(f.agg, input.is_none(), &passing, &f.dtype)
                            })
                            .collect()
                    })
                    .collect();
                (
                    w.features
                        .iter()
                        .map(|f| column(&f.name, &f.dtype))
                        .collect(),
                    out,
                )
            }
        };
        feature_tables.push((join.alias.clone(), columns, values));
    }
    // The spec's columns over the joined rows.
    sql.table(&spec.source, &events_src.columns, &events);
    let mut from = format!("\"{}\"", spec.source);
    for (alias, columns, values) in &feature_tables {
        sql.table(alias, columns, values);
        from.push_str(&format!(
            " JOIN \"{alias}\" ON \"{}\".__row = \"{alias}\".__row",
            spec.source
        ));
    }
    let exprs: Vec<(String, Option<DataType>)> = spec
        .columns
        .iter()
        .map(|c| (c.expr.clone(), Some(c.dtype.clone())))
        .collect();
    sql.select(&exprs, &from, &spec.source).await
}

// ---- the engines ---------------------------------------------------------------------

async fn batch(case: &Case, work: &Path) -> Vec<Vec<Value>> {
    let mut locations = std::collections::HashMap::new();
    for source in case.defs.sources.values() {
        let path = work.join(format!("{}.parquet", source.name));
        let schema = plain_source_schema(source);
        let batch = batch_of(&source.columns, &case.rows[&source.name], schema.clone());
        let file = std::fs::File::create(&path).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        locations.insert(source.name.clone(), path);
    }
    let spec = CompiledSpec::compile(&case.defs, &case.spec.name).unwrap();
    let ctx = fstore_offline::read::session();
    let (out, _) = fstore_offline::sample(&ctx, &spec, &locations, Default::default())
        .await
        .unwrap_or_else(|e| panic!("{}: batch: {e}", case.name));
    rows_of(&out)
}

fn stream(case: &Case, work: &Path) -> Vec<Vec<Value>> {
    let cfg = JoinConfig {
        spec: case.spec.name.clone(),
        brokers: String::new(),
        state_dir: work.join("state"),
        sink: SinkTarget::Kafka("samples".into()),
        dead_letter_topic: "dead".into(),
        // Rows arrive interleaved by event time: none is late.
        lateness_us: 365 * 86_400_000_000,
        until_end: true,
        topics: case
            .defs
            .sources
            .keys()
            .map(|s| (s.clone(), s.clone()))
            .collect(),
        checkpoint_interval: Duration::from_secs(3600),
        idle_timeout: Duration::from_secs(3600),
        instance: Instance::SOLE,
        broadcast: Default::default(),
        kafka_options: Vec::new(),
        max_batch: 3,
        compact_rows: 16,
        max_future_us: None,
    };
    let outlet = MemoryOutlet::default();
    let mut joiner = Joiner::open_with(cfg, &case.defs, 1, None, |_, sources| {
        // Every source's rows, merged by event time (rows without one first), each source's
        // file order kept.
        let mut msgs: Vec<(i64, Message)> = Vec::new();
        for (s, read) in sources.iter().enumerate() {
            let source = &case.defs.sources[&read.topic];
            let ts = source
                .columns
                .iter()
                .position(|c| c.name == source.event_time)
                .unwrap();
            for (offset, row) in case.rows[&source.name].iter().enumerate() {
                let t = match row[ts] {
                    Value::Timestamp(t) => t,
                    _ => i64::MIN,
                };
                let value = encode_row(&source.columns, row).into_bytes();
                msgs.push((
                    t,
                    Message {
                        source: s,
                        partition: 0,
                        offset: offset as i64,
                        key: None,
                        value: Some(value),
                    },
                ));
            }
        }
        msgs.sort_by_key(|(t, _)| *t);
        let input = MemoryInput::new(sources, msgs.into_iter().map(|(_, m)| m).collect(), 3);
        let ends = input.ends();
        Ok(Io {
            input: Box::new(input),
            outlet: Box::new(outlet.clone()),
            partitions: ends.keys().cloned().collect(),
            ends: Some(ends),
        })
    })
    .unwrap_or_else(|e| panic!("{}: stream: {e}", case.name));
    joiner.run(&Default::default()).unwrap();
    let columns = output_columns(&case.spec);
    outlet
        .messages("samples")
        .iter()
        .map(|m| decode_row(&columns, &m.payload).unwrap())
        .collect()
}

/// Online serving: for each event time, the case's groups materialized as of it into an
/// embedded store, `fstore serve` on it, and `GetModelInputs` for the events at that time.
/// Returns, per event with an event time (in row order), the spec's default inputs.
async fn online(case: &Case, work: &Path) -> Vec<Vec<Value>> {
    use fstore_proto::v1 as pb;
    let registry = work.join("registry");
    let defs_dir = case.dir.join("defs");
    let applied = crate::support::fstore(
        &[
            "apply",
            defs_dir.to_str().unwrap(),
            "--registry",
            registry.to_str().unwrap(),
        ],
        work,
    );
    assert_eq!(
        applied.status.code(),
        Some(0),
        "{}",
        crate::support::text(&applied)
    );
    let sources: Vec<String> = case
        .defs
        .sources
        .keys()
        .map(|s| format!("{s}={}", work.join(format!("{s}.parquet")).display()))
        .collect();
    let groups: Vec<&str> = case.spec.joins.iter().map(|j| j.group.as_str()).collect();
    let events_src = &case.defs.sources[&case.spec.source];
    let ets = events_src
        .columns
        .iter()
        .position(|c| c.name == events_src.event_time)
        .unwrap();
    let events: Vec<&Vec<Value>> = case.rows[&case.spec.source]
        .iter()
        .filter(|r| r[ets] != Value::Null)
        .collect();
    let mut times: Vec<i64> = events
        .iter()
        .map(|e| match e[ets] {
            Value::Timestamp(t) => t,
            _ => unreachable!(),
        })
        .collect();
    times.sort_unstable();
    times.dedup();
    let inputs = case.spec.default_inputs();
    let mut out: BTreeMap<usize, Vec<Value>> = BTreeMap::new();
    for (k, &t) in times.iter().enumerate() {
        let store = format!("rocksdb://{}", work.join(format!("online-{k}")).display());
        let at = fstore_core::json::format_timestamp(t);
        let mut args = vec!["materialize"];
        args.extend(&groups);
        args.extend([
            "--as-of",
            &at,
            "--online",
            &store,
            "--registry",
            registry.to_str().unwrap(),
        ]);
        for s in &sources {
            args.extend(["--source", s.as_str()]);
        }
        let m = crate::support::fstore(&args, work);
        assert_eq!(m.status.code(), Some(0), "{}", crate::support::text(&m));
        let server = crate::online_serve::Server::start(&registry, &store, "fstore");
        let mut client = server.client().await;
        let at_t: Vec<usize> = (0..events.len())
            .filter(|&i| events[i][ets] == Value::Timestamp(t))
            .collect();
        let rows = at_t
            .iter()
            .map(|&i| pb::EventRow {
                columns: events_src
                    .columns
                    .iter()
                    .zip(events[i])
                    .filter_map(|(c, v)| {
                        let value = match v {
                            Value::Null => return None,
                            Value::Boolean(b) => pb::scalar::Value::BoolValue(*b),
                            Value::Int64(n) => pb::scalar::Value::Int64Value(*n),
                            Value::Double(d) => pb::scalar::Value::DoubleValue(*d),
                            Value::String(s) => pb::scalar::Value::StringValue(s.clone()),
                            Value::Timestamp(t) => pb::scalar::Value::TimestampUs(*t),
                            Value::List(_) => return None,
                        };
                        Some((c.name.clone(), pb::Scalar { value: Some(value) }))
                    })
                    .collect(),
            })
            .collect();
        let resp = client
            .get_model_inputs(pb::GetModelInputsRequest {
                model: case.spec.name.clone(),
                rows,
                request_time_us: Some(t),
            })
            .await
            .unwrap_or_else(|s| panic!("{}: GetModelInputs: {s:?}", case.name))
            .into_inner();
        let names: Vec<&str> = resp.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, inputs, "{}: GetModelInputs columns", case.name);
        for (r, &i) in at_t.iter().enumerate() {
            let row = resp
                .columns
                .iter()
                .map(|c| crate::online_serve::column_value(&c.dtype, c.values.as_ref().unwrap(), r))
                .collect();
            out.insert(i, row);
        }
    }
    out.into_values().collect()
}

/// The default inputs of expected samples (the columns `GetModelInputs` answers), in order.
fn inputs_of(case: &Case, samples: &[Vec<Value>]) -> Vec<Vec<Value>> {
    let at: Vec<usize> = case
        .spec
        .default_inputs()
        .iter()
        .map(|n| case.spec.columns.iter().position(|c| &c.name == n).unwrap())
        .collect();
    samples
        .iter()
        .map(|s| at.iter().map(|&c| s[c].clone()).collect())
        .collect()
}

// ---- comparison ----------------------------------------------------------------------

/// Bitwise equality: doubles by their bits (-0.0 is not 0.0), NULL only equal to NULL. NaNs
/// are equal whatever their sign and payload: the JSON row encoding (of `expected.jsonl` and
/// of the joiner's Kafka samples) writes every NaN as `"NaN"`.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Double(x), Value::Double(y)) => {
            x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())
        }
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        _ => a == b,
    }
}

/// The differences between two sets of samples, each sorted in the value order.
fn diffs(what: &str, got: &[Vec<Value>], want: &[Vec<Value>], columns: &[Column]) -> Vec<String> {
    let sorted = |rows: &[Vec<Value>]| {
        let mut r = rows.to_vec();
        r.sort_by(|a, b| order_all(a, b));
        r
    };
    let (got, want) = (sorted(got), sorted(want));
    if got.len() != want.len() {
        return vec![format!(
            "{what}: {} samples, expected {}",
            got.len(),
            want.len()
        )];
    }
    let mut out = Vec::new();
    for (g, w) in got.iter().zip(&want) {
        for (c, col) in columns.iter().enumerate() {
            if !same(&g[c], &w[c]) {
                out.push(format!(
                    "{what}: column {}: {:?}, expected {:?} (row {})",
                    col.name,
                    g[c],
                    w[c],
                    encode_row(columns, w)
                ));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_case_gives_its_expected_samples_in_batch_stream_and_online() {
    let bless = std::env::var("FSTORE_BLESS").as_deref() == Ok("1");
    let mut failures = Vec::new();
    for case in cases() {
        let columns = output_columns(&case.spec);
        let reference = reference(&case).await;
        let path = case.dir.join("expected.jsonl");
        if bless {
            let text: String = reference
                .iter()
                .map(|r| encode_row(&columns, r) + "\n")
                .collect();
            std::fs::write(&path, text).unwrap();
        }
        let expected: Vec<Vec<Value>> = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (FSTORE_BLESS=1 writes it)", path.display()))
            .lines()
            .map(|l| decode_row(&columns, l.as_bytes()).unwrap())
            .collect();
        assert!(!expected.is_empty(), "{}: no samples expected", case.name);
        let work = tempfile::tempdir().unwrap();
        let mut found = diffs("reference", &reference, &expected, &columns);
        found.extend(diffs(
            "batch",
            &batch(&case, work.path()).await,
            &expected,
            &columns,
        ));
        found.extend(diffs(
            "stream",
            &stream(&case, work.path()),
            &expected,
            &columns,
        ));
        // Online: what GetModelInputs answers for each event at its time, after the store was
        // materialized as of that time, equals the sample's inputs.
        let input_columns: Vec<Column> = case
            .spec
            .default_inputs()
            .iter()
            .map(|n| {
                let c = case.spec.columns.iter().find(|c| &c.name == n).unwrap();
                column(&c.name, &c.dtype)
            })
            .collect();
        found.extend(diffs(
            "online",
            &online(&case, work.path()).await,
            &inputs_of(&case, &expected),
            &input_columns,
        ));
        failures.extend(
            found
                .into_iter()
                .take(20)
                .map(|d| format!("{}: {d}", case.name)),
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
