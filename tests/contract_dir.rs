//! Where the contract vectors are, for every test crate that checks against them (included by
//! path, so one function serves the workspace's tests and the batch engine's).

use std::path::PathBuf;

/// The contract vectors: `FSTORE_CONTRACT_DIR`, or `shared/contract` beside the repository.
/// Missing, the test skips with a message, and fails where `FSTORE_REQUIRE_CONTRACT=1` (CI).
pub fn contract_dir() -> Option<PathBuf> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|d| d.join("Cargo.lock").exists())
        .map(PathBuf::from)
        .expect("the workspace root holds Cargo.lock");
    let d = std::env::var_os("FSTORE_CONTRACT_DIR")
        .map_or_else(|| repo.join("../shared/contract"), PathBuf::from);
    if d.exists() {
        return Some(d);
    }
    assert!(
        std::env::var("FSTORE_REQUIRE_CONTRACT").as_deref() != Ok("1"),
        "the contract vectors are required but {} does not exist",
        d.display()
    );
    eprintln!("skipped: no contract vectors at {}", d.display());
    None
}
