//! The `fstore` command line: definitions → registry, and (in later commands) samples,
//! materialization, serving and streaming.

mod datagen;
mod describe;
mod exit;
mod export;
mod join;
mod materialize;
mod metrics_http;
mod progress;
mod sample;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fstore_registry::{Applied, Registry};

use crate::exit::CliError;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// fstore: feature definitions in git, compiled into a versioned registry; consistent
/// training samples and online features.
#[derive(Parser, Debug)]
#[command(name = "fstore", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Debug)]
struct RegistryArg {
    /// Registry folder (created by `apply`).
    #[arg(long, env = "FSTORE_REGISTRY", default_value = ".fstore/registry")]
    registry: PathBuf,
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once per process
enum Command {
    /// Checks the definitions in DIR; exits 2 on any error.
    Validate {
        /// Definitions folder (every *.sql file under it).
        dir: PathBuf,
    },
    /// Shows what `apply` would change, each change compatible or breaking.
    Plan {
        dir: PathBuf,
        #[command(flatten)]
        registry: RegistryArg,
        /// Plan as if breaking changes other than to feature groups were allowed.
        #[arg(long)]
        allow_breaking: bool,
    },
    /// Compiles DIR into a new immutable registry version (no-op when nothing changed).
    Apply {
        dir: PathBuf,
        #[command(flatten)]
        registry: RegistryArg,
        /// Allow removals and breaking changes to sources, entities, specs and models.
        /// Breaking changes to feature groups always need a new VERSION.
        #[arg(long)]
        allow_breaking: bool,
    },
    /// Prints an object of the current registry version: definition and Arrow schema.
    Describe {
        /// Object name (several kinds may share it); `kind:name` picks one
        /// (entity, source, group, spec, model).
        name: String,
        #[command(flatten)]
        registry: RegistryArg,
        /// Print the stored canonical JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Generates a data set for an example (`ctr`): Parquet, JSON lines, arrival-ordered
    /// events and the edge cases planted, deterministic for a seed.
    Gen {
        /// The example to generate for; only `ctr` exists.
        example: String,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        args: datagen::GenArgs,
    },
    /// Loads each key's as-of value of row feature groups into the online store.
    Materialize {
        #[command(flatten)]
        registry: RegistryArg,
        #[command(flatten)]
        args: materialize::MaterializeArgs,
    },
    /// Serves online features and registry reads over gRPC (package fstore.v1).
    Serve {
        #[command(flatten)]
        registry: RegistryArg,
        #[command(flatten)]
        args: serve::ServeArgs,
    },
    /// Fetches a group's (or feature's) values for keys from a running `fstore serve`.
    Get {
        #[command(flatten)]
        args: serve::GetArgs,
    },
    /// Computes training samples for a spec from its sources' Parquet files.
    Sample {
        #[command(flatten)]
        registry: RegistryArg,
        #[command(flatten)]
        args: sample::SampleArgs,
    },
    /// Computes a spec's samples from its Kafka topics as the watermark passes each event,
    /// exactly once across restarts; keeps an online store fresh on the way.
    Join {
        #[command(flatten)]
        registry: RegistryArg,
        #[command(flatten)]
        args: join::JoinArgs,
    },
    /// Writes what a model (or spec) consumes for the layers around it: an Arrow schema, a
    /// TensorFlow feature spec, a Python input module, Triton blocks, or a graph schema.
    Export {
        #[command(flatten)]
        registry: RegistryArg,
        #[command(flatten)]
        args: export::ExportArgs,
    },
    /// Writes a spec's graph as of a time: node tables per entity, edge tables per event source.
    ExportGraph {
        #[command(flatten)]
        registry: RegistryArg,
        #[command(flatten)]
        args: export::ExportGraphArgs,
    },
    /// Lists the objects of the current registry version.
    List {
        #[command(flatten)]
        registry: RegistryArg,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report(),
    }
}

/// Runs a future on a thread of its own with a single-threaded runtime, for commands that
/// are not async themselves (a metrics listener, a signal watcher).
pub(crate) fn in_background(fut: impl std::future::Future<Output = ()> + Send + 'static) {
    std::thread::spawn(move || {
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(fut),
            Err(e) => tracing::warn!(error = %e, "cannot start a background runtime"),
        }
    });
}

/// Log lines go to stderr: JSON when stderr is not a terminal (schedulers, CI), at `info`;
/// on a terminal only warnings, since progress is drawn there. `FSTORE_LOG` overrides the
/// filter (`tracing` env-filter syntax).
fn init_logging() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let tty = std::io::stderr().is_terminal();
    let filter = EnvFilter::try_from_env("FSTORE_LOG")
        .unwrap_or_else(|_| EnvFilter::new(if tty { "warn" } else { "info" }));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if tty {
        builder.compact().init();
    } else {
        builder.json().flatten_event(true).init();
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Validate { dir } => {
            let defs = fstore_dsl::load_dir(&dir)?;
            println!(
                "ok: {} entities, {} sources, {} feature groups, {} sample specs, {} models in {}",
                defs.entities.len(),
                defs.sources.len(),
                defs.groups.len(),
                defs.specs.len(),
                defs.models.len(),
                dir.display()
            );
        }
        Command::Plan {
            dir,
            registry,
            allow_breaking,
        } => {
            let defs = fstore_dsl::load_dir(&dir)?;
            let reg = Registry::new(&registry.registry);
            let current = reg.current_version()?;
            let plan = reg.plan(&defs, allow_breaking)?;
            match current {
                Some(v) => println!("registry {} at version {v}", reg.root().display()),
                None => println!("registry {} is empty", reg.root().display()),
            }
            if plan.is_empty() {
                println!("no changes");
            } else {
                println!("{plan}");
                let refused = plan.refusals().count();
                if refused > 0 {
                    println!(
                        "apply would refuse {refused} change{}",
                        if refused == 1 { "" } else { "s" }
                    );
                } else {
                    println!("apply would write version {}", current.unwrap_or(0) + 1);
                }
            }
        }
        Command::Apply {
            dir,
            registry,
            allow_breaking,
        } => {
            let defs = fstore_dsl::load_dir(&dir)?;
            let reg = Registry::new(&registry.registry);
            match reg.apply(defs, &dir, allow_breaking)? {
                Applied::Unchanged(v) => println!(
                    "no changes; registry {} stays at version {v}",
                    reg.root().display()
                ),
                Applied::New { version, plan } => {
                    println!("{plan}");
                    println!(
                        "applied: registry {} is now at version {version}",
                        reg.root().display()
                    );
                }
            }
        }
        Command::Describe {
            name,
            registry,
            json,
        } => {
            let snap = Registry::new(&registry.registry).require_current()?;
            print!("{}", describe::describe(&snap, &name, json)?);
        }
        Command::Gen { example, out, args } => {
            if example != "ctr" {
                return Err(CliError::user(format!(
                    "unknown example \"{example}\" (known: ctr)"
                )));
            }
            datagen::generate(&args, &out).map_err(|e| CliError::internal(format!("{e:#}")))?;
        }
        Command::Sample { registry, args } => sample::run(&registry.registry, args)?,
        Command::Materialize { registry, args } => materialize::run(&registry.registry, args)?,
        Command::Serve { registry, args } => serve::serve(&registry.registry, args)?,
        Command::Get { args } => serve::get(args)?,
        Command::Join { registry, args } => join::run(&registry.registry, args)?,
        Command::Export { registry, args } => export::export(&registry.registry, args)?,
        Command::ExportGraph { registry, args } => export::export_graph(&registry.registry, args)?,
        Command::List { registry } => {
            let snap = Registry::new(&registry.registry).require_current()?;
            print!("{}", describe::list(&snap));
        }
    }
    Ok(())
}
