//! Versioned, immutable registry snapshots in a folder.
//!
//! ```text
//! PATH/
//!   versions/v00000001.json   one snapshot per version, never rewritten
//!   CURRENT                   the current version number
//!   LOCK                      held (advisory file lock) while an apply runs
//! ```
//!
//! An apply writes the new snapshot to a temporary file, syncs it, renames it into
//! `versions/`, then replaces `CURRENT` the same way. A crash at any point leaves `CURRENT`
//! naming a complete snapshot: the previous one until the final rename, the new one after.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::compat::{Plan, plan};
use crate::model::Definitions;
use crate::{Error, Result};

/// The snapshot file format version.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// One immutable registry version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub format: u32,
    pub version: u64,
    /// Milliseconds since the epoch when the version was applied.
    pub created_at_ms: u64,
    /// The definitions folder relative batch locations are resolved against.
    pub definitions_dir: PathBuf,
    /// Fingerprint of all objects together.
    pub fingerprint: String,
    /// `kind/name` → object fingerprint, for readers that only compare.
    pub fingerprints: BTreeMap<String, String>,
    pub definitions: Definitions,
}

impl Snapshot {
    fn new(version: u64, definitions_dir: PathBuf, definitions: Definitions) -> Self {
        let fingerprints = definitions
            .objects()
            .iter()
            .map(|o| {
                (
                    format!("{}/{}", o.kind().label().replace(' ', "_"), o.name()),
                    o.fingerprint(),
                )
            })
            .collect();
        let created_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Snapshot {
            format: SNAPSHOT_FORMAT,
            version,
            created_at_ms,
            definitions_dir,
            fingerprint: definitions.fingerprint(),
            fingerprints,
            definitions,
        }
    }

    /// Resolves a source's batch location against the definitions folder.
    pub fn resolve_location(&self, location: &str) -> PathBuf {
        let p = Path::new(location);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.definitions_dir.join(p)
        }
    }
}

/// What an apply did.
#[derive(Debug)]
pub enum Applied {
    /// Nothing changed; the registry stays at this version.
    Unchanged(u64),
    /// A new version was written.
    New { version: u64, plan: Plan },
}

/// A registry folder.
#[derive(Debug, Clone)]
pub struct Registry {
    root: PathBuf,
}

impl Registry {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Registry { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn current_path(&self) -> PathBuf {
        self.root.join("CURRENT")
    }

    fn version_path(&self, v: u64) -> PathBuf {
        self.root.join("versions").join(format!("v{v:08}.json"))
    }

    /// The current version number, or `None` for a registry never applied to.
    pub fn current_version(&self) -> Result<Option<u64>> {
        let path = self.current_path();
        match fs::read_to_string(&path) {
            Ok(s) => s.trim().parse::<u64>().map(Some).map_err(|_| {
                Error::Invalid(format!(
                    "{} holds {:?}, not a version number",
                    path.display(),
                    s.trim()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", path, e)),
        }
    }

    /// The current snapshot, or `None` for a registry never applied to.
    pub fn load_current(&self) -> Result<Option<Snapshot>> {
        self.current_version()?.map(|v| self.load(v)).transpose()
    }

    /// The current snapshot; an error naming the path when there is none.
    pub fn require_current(&self) -> Result<Snapshot> {
        self.load_current()?
            .ok_or_else(|| Error::NoRegistry(self.root.clone()))
    }

    /// A given version's snapshot.
    pub fn load(&self, version: u64) -> Result<Snapshot> {
        let path = self.version_path(version);
        let text = fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
        serde_json::from_str(&text).map_err(|source| Error::Corrupt { path, source })
    }

    /// Every version number present, ascending.
    pub fn versions(&self) -> Result<Vec<u64>> {
        let dir = self.root.join("versions");
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list", dir, e)),
        };
        let mut out: Vec<u64> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_prefix('v')?
                    .strip_suffix(".json")?
                    .parse()
                    .ok()
            })
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// The diff between the current version and `defs`.
    pub fn plan(&self, defs: &Definitions, allow_breaking: bool) -> Result<Plan> {
        let current = self.load_current()?;
        Ok(plan(
            current.as_ref().map(|s| &s.definitions),
            defs,
            allow_breaking,
        ))
    }

    /// Writes `defs` as a new version unless nothing changed; refuses breaking changes the
    /// rules forbid, naming each and why.
    pub fn apply(
        &self,
        defs: Definitions,
        definitions_dir: &Path,
        allow_breaking: bool,
    ) -> Result<Applied> {
        fs::create_dir_all(self.root.join("versions"))
            .map_err(|e| Error::io("create", self.root.join("versions"), e))?;
        let lock_path = self.root.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io("open", &lock_path, e))?;
        lock.lock().map_err(|e| Error::io("lock", &lock_path, e))?;

        let current = self.load_current()?;
        let plan = plan(
            current.as_ref().map(|s| &s.definitions),
            &defs,
            allow_breaking,
        );
        let refusals: Vec<String> = plan
            .refusals()
            .map(|c| {
                format!(
                    "{} \"{}\": {}",
                    c.kind.label(),
                    c.name,
                    c.refusal.as_deref().unwrap_or("")
                )
            })
            .collect();
        if !refusals.is_empty() {
            return Err(Error::Refused(format!(
                "apply refused:\n  {}",
                refusals.join("\n  ")
            )));
        }
        let current_version = current.as_ref().map_or(0, |s| s.version);
        if plan.is_empty() && current.is_some() {
            return Ok(Applied::Unchanged(current_version));
        }
        // Versions are never reused, even if CURRENT was rolled back by hand.
        let version = self
            .versions()?
            .last()
            .copied()
            .unwrap_or(0)
            .max(current_version)
            + 1;
        let dir =
            fs::canonicalize(definitions_dir).unwrap_or_else(|_| definitions_dir.to_path_buf());
        let snapshot = Snapshot::new(version, dir, defs);
        let body = serde_json::to_vec_pretty(&snapshot).expect("snapshots serialize");
        write_atomic(&self.version_path(version), &body)?;
        write_atomic(&self.current_path(), format!("{version}\n").as_bytes())?;
        drop(lock);
        Ok(Applied::New { version, plan })
    }
}

/// Writes `path` so that readers see either the old content or all of the new one.
fn write_atomic(path: &Path, body: &[u8]) -> Result<()> {
    let dir = path.parent().expect("registry paths have a parent");
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let mut f = File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
    f.write_all(body).map_err(|e| Error::io("write", &tmp, e))?;
    f.sync_all().map_err(|e| Error::io("sync", &tmp, e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| Error::io("rename", path, e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("sync", dir, e))?;
    Ok(())
}
