//! Batch engine tests: the contract vectors and a brute-force reference.

mod contract;
mod ranges;
mod reference;

/// Fails with the first differing cells, sorted, if any.
pub fn assert_no_diffs(mut diffs: Vec<String>, cells: usize) {
    diffs.sort();
    let shown: Vec<&str> = diffs.iter().take(30).map(String::as_str).collect();
    assert!(
        diffs.is_empty(),
        "{} of {cells} cells differ:\n{}",
        diffs.len(),
        shown.join("\n")
    );
}
