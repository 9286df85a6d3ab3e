//! dsl integration tests
