//! Batch engine tests: the contract vectors and a brute-force reference.

mod contract;
mod reference;
