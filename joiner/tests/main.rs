//! Joiner tests that run without a broker (the broker tests are the workspace's `tests/`).

mod phases;
