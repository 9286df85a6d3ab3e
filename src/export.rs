//! `fstore export` (a model's or spec's schema for trainers, inference servers and graph
//! samplers) and `fstore export-graph` (node and edge tables as of a time).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Field, Schema, TimestampMicrosecondType};
use fstore_core::codec::Value;
use fstore_core::expr::ExprCompiler;
use fstore_core::rows::{to_array, value_at};
use fstore_export::{Signature, graph_schema};
use fstore_registry::Registry;
use fstore_registry::compiled::{CompiledGroup, CompiledGroupKind};
use futures::StreamExt;

use crate::exit::CliError;
use crate::sample::{parse_time, source_locations};

/// What `fstore export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The sample schema with per-field metadata: Arrow IPC at PATH, JSON at PATH.json.
    Arrow,
    /// A feature spec for tf.io.parse_example readers (JSON).
    Tf,
    /// A Python module (numpy + pyarrow) yielding model inputs from sample Parquet.
    Python,
    /// Triton's config.pbtxt `input` and `output` blocks.
    Triton,
    /// The graph schema (nodes: entities with their groups' features; edges: event sources).
    Graph,
    /// The model's signature as fstore describes it (JSON).
    Json,
}

/// Arguments of `fstore export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// A model (its inputs in input order) or a sample spec (all its features and transforms).
    pub name: String,
    #[arg(long, value_enum)]
    pub format: Format,
    /// The file to write (`-` for standard output, except for arrow).
    #[arg(long)]
    pub out: PathBuf,
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    if path == Path::new("-") {
        use std::io::Write;
        return std::io::stdout()
            .write_all(bytes)
            .map_err(|e| CliError::user(format!("write standard output: {e}")));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::user(format!("create {}: {e}", dir.display())))?;
    }
    let tmp = path.with_extension("fstore-tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| CliError::user(format!("write {}: {e}", path.display())))
}

pub fn export(registry: &Path, args: ExportArgs) -> Result<(), CliError> {
    let snap = Registry::new(registry).require_current()?;
    let defs = &snap.definitions;
    if args.format == Format::Graph {
        let spec = match defs.models.get(&args.name) {
            Some(m) => m.spec.clone(),
            None => args.name.clone(),
        };
        let g = graph_schema(defs, &spec, snap.version)?;
        let text = serde_json::to_string_pretty(&g).map_err(|e| CliError::user(e.to_string()))?;
        write(&args.out, text.as_bytes())?;
        println!(
            "graph schema of spec \"{spec}\" written to {}",
            args.out.display()
        );
        return Ok(());
    }
    let sig = Signature::of(defs, &args.name, snap.version)?;
    let spec = defs.spec(&sig.spec)?;
    match args.format {
        Format::Arrow => {
            if args.out == Path::new("-") {
                return Err(CliError::user(
                    "--format arrow writes a file: give --out PATH",
                ));
            }
            write(&args.out, &sig.arrow_ipc(spec)?)?;
            let json = PathBuf::from(format!("{}.json", args.out.display()));
            write(&json, sig.arrow_json(spec).as_bytes())?;
        }
        Format::Tf => write(&args.out, sig.tf_spec().as_bytes())?,
        Format::Triton => write(&args.out, sig.triton().as_bytes())?,
        Format::Json => write(&args.out, sig.to_json().as_bytes())?,
        Format::Python => {
            let module = args
                .out
                .file_stem()
                .and_then(|s| s.to_str())
                .filter(|s| {
                    !s.is_empty()
                        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        && !s.starts_with(|c: char| c.is_ascii_digit())
                })
                .unwrap_or("model_inputs")
                .to_string();
            write(&args.out, sig.python_module(&module).as_bytes())?;
        }
        Format::Graph => unreachable!("handled above"),
    }
    if args.out != Path::new("-") {
        println!(
            "{} inputs and {} outputs of \"{}\" (spec \"{}\", registry version {}) written to {}",
            sig.inputs.len(),
            sig.outputs.len(),
            sig.model,
            sig.spec,
            sig.registry_version,
            args.out.display()
        );
    }
    Ok(())
}

/// Arguments of `fstore export-graph`.
#[derive(Debug, clap::Args)]
pub struct ExportGraphArgs {
    /// The sample spec whose entities and event source make the graph.
    pub spec: String,
    /// The time of the node features (as the as-of join gives them to an event then) and the
    /// last edge time (inclusive): YYYY-MM-DD or RFC 3339.
    #[arg(long)]
    pub as_of: String,
    /// Output folder: graph.json, nodes/ENTITY.parquet, edges/SOURCE.parquet.
    #[arg(long)]
    pub out: PathBuf,
    /// Read a source from another Parquet location: NAME=PATH. Repeatable.
    #[arg(long = "source", value_name = "NAME=PATH")]
    pub sources: Vec<String>,
}

fn internal(e: impl std::fmt::Display) -> CliError {
    CliError::internal(e)
}

fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<(), CliError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::user(format!("create {}: {e}", dir.display())))?;
    }
    let tmp = path.with_extension("fstore-tmp");
    let file = std::fs::File::create(&tmp)
        .map_err(|e| CliError::user(format!("create {}: {e}", tmp.display())))?;
    let mut w =
        parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).map_err(internal)?;
    w.write(batch).map_err(internal)?;
    w.close().map_err(internal)?;
    std::fs::rename(&tmp, path)
        .map_err(|e| CliError::user(format!("write {}: {e}", path.display())))
}

/// A node's features: group feature values by key (keys kept with their values).
type NodeRows = BTreeMap<String, (Vec<Value>, BTreeMap<String, Value>)>;

/// Each key's feature values of one group as of `at`: row groups' as-of rows, window groups'
/// folds over `[at - w, at)`.
async fn group_values(
    ctx: &fstore_registry::datafusion::prelude::SessionContext,
    g: &Arc<CompiledGroup>,
    location: &Path,
    at: i64,
    into: &mut NodeRows,
) -> Result<(), CliError> {
    let names: Vec<String> = g
        .features()
        .into_iter()
        .map(|(f, _)| format!("{}.{f}", g.group.name))
        .collect();
    let mut put = |key: Vec<Value>, values: Vec<Value>| {
        let entry = into
            .entry(format!("{key:?}"))
            .or_insert_with(|| (key, BTreeMap::new()));
        for (n, v) in names.iter().zip(values) {
            entry.1.insert(n.clone(), v);
        }
    };
    match &g.kind {
        CompiledGroupKind::Row { .. } => {
            let job = fstore_offline::engine::plan_group_values(ctx, g, location, at).await?;
            let mut stream = std::pin::pin!(job.execute(ctx)?);
            let k = g.key_columns.len();
            let n = g.features().len();
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                let row_time = batch
                    .column(k + 1 + n)
                    .as_primitive::<TimestampMicrosecondType>();
                for r in 0..batch.num_rows() {
                    let key = (0..k)
                        .map(|c| value_at(batch.column(c), r))
                        .collect::<Result<Vec<_>, _>>()?;
                    let values = if row_time.is_null(r) {
                        vec![Value::Null; n]
                    } else {
                        (0..n)
                            .map(|c| value_at(batch.column(k + 1 + c), r))
                            .collect::<Result<Vec<_>, _>>()?
                    };
                    put(key, values);
                }
            }
        }
        CompiledGroupKind::Window { features } => {
            let mut stream =
                std::pin::pin!(fstore_offline::engine::window_states(ctx, g, location, at).await?);
            while let Some(chunk) = stream.next().await {
                for (key, rows) in chunk? {
                    put(key, rows.fold(features, at));
                }
            }
        }
    }
    Ok(())
}

pub fn export_graph(registry: &Path, args: ExportGraphArgs) -> Result<(), CliError> {
    let snap = Registry::new(registry).require_current()?;
    let defs = &snap.definitions;
    let at = parse_time(&args.as_of)?;
    let schema = graph_schema(defs, &args.spec, snap.version)?;
    let spec = defs.spec(&args.spec)?;
    let compiler = ExprCompiler::new();
    let mut groups: Vec<Arc<CompiledGroup>> = Vec::new();
    for j in &spec.joins {
        if !groups.iter().any(|g| g.group.name == j.group) {
            groups.push(Arc::new(CompiledGroup::compile(
                defs,
                defs.group(&j.group)?,
                &compiler,
            )?));
        }
    }
    let event_source = defs.source(&spec.source)?.clone();
    let sources = std::iter::once(&event_source).chain(groups.iter().map(|g| &g.source));
    let locations = source_locations(&snap, sources, &args.sources)?;
    let location = |name: &str| {
        locations.get(name).cloned().ok_or_else(|| {
            CliError::user(format!(
                "no location for source \"{name}\": declare BATCH PARQUET or pass --source {name}=PATH"
            ))
        })
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(internal)?;
    let ctx = fstore_offline::read::session();
    let mut written = Vec::new();
    rt.block_on(async {
        // Nodes: per entity, every key any of its groups has a value for.
        for node in schema["nodes"].as_array().into_iter().flatten() {
            let entity = node["type"].as_str().unwrap_or_default().to_string();
            let ent = defs.entity(&entity)?;
            let mut rows: NodeRows = BTreeMap::new();
            let mut columns: Vec<(String, fstore_registry::DataType)> = Vec::new();
            // What a key without a value in a group has: NULLs, or a window's empty fold.
            let mut absent: BTreeMap<String, Value> = BTreeMap::new();
            for g in groups.iter().filter(|g| g.group.entity == entity) {
                group_values(&ctx, g, &location(&g.source.name)?, at, &mut rows).await?;
                let empty = match &g.kind {
                    CompiledGroupKind::Window { features } => {
                        fstore_core::semantics::window::WindowRows::empty(features)
                            .fold(features, at)
                    }
                    CompiledGroupKind::Row { .. } => vec![Value::Null; g.features().len()],
                };
                for ((f, t), v) in g.features().into_iter().zip(empty) {
                    let name = format!("{}.{f}", g.group.name);
                    absent.insert(name.clone(), v);
                    columns.push((name, t));
                }
            }
            let mut fields: Vec<Field> = ent
                .keys
                .iter()
                .map(|k| Field::new(&k.name, k.dtype.to_arrow(), true))
                .collect();
            fields.extend(
                columns
                    .iter()
                    .map(|(n, t)| Field::new(n, t.to_arrow(), true)),
            );
            let mut arrays = Vec::new();
            for (i, k) in ent.keys.iter().enumerate() {
                arrays.push(to_array(&k.dtype, rows.values().map(|(key, _)| &key[i]))?);
            }
            let null = Value::Null;
            for (n, t) in &columns {
                arrays.push(to_array(
                    t,
                    rows.values()
                        .map(|(_, v)| v.get(n).or_else(|| absent.get(n)).unwrap_or(&null)),
                )?);
            }
            let batch =
                RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(internal)?;
            let path = args.out.join(format!("nodes/{entity}.parquet"));
            write_parquet(&path, &batch)?;
            written.push(format!("{} ({} nodes)", path.display(), batch.num_rows()));
        }
        // Edges: the event source's rows up to `at`, ordered by event time.
        for edge in schema["edges"].as_array().into_iter().flatten() {
            let df = fstore_offline::read::source_frame(
                &ctx,
                &event_source,
                &location(&event_source.name)?,
                (None, Some(at.saturating_add(1))),
            )
            .await?;
            let df = df
                .sort(vec![
                    fstore_registry::datafusion::prelude::ident(&event_source.event_time)
                        .sort(true, true),
                ])
                .map_err(fstore_offline::Error::from)?;
            let batches = df.collect().await.map_err(fstore_offline::Error::from)?;
            let schema = fstore_registry::compiled::plain_source_schema(&event_source);
            let batch = arrow::compute::concat_batches(&schema, &batches).map_err(internal)?;
            let name = edge["type"].as_str().unwrap_or_default();
            let path = args.out.join(format!("edges/{name}.parquet"));
            write_parquet(&path, &batch)?;
            written.push(format!("{} ({} edges)", path.display(), batch.num_rows()));
        }
        Ok::<_, CliError>(())
    })?;
    let text = serde_json::to_string_pretty(&schema).map_err(internal)?;
    write(&args.out.join("graph.json"), text.as_bytes())?;
    println!(
        "graph of spec \"{}\" as of {} under {}: {}",
        args.spec,
        fstore_core::json::format_timestamp(at),
        args.out.display(),
        written.join(", ")
    );
    Ok(())
}
