//! End-to-end tests of the `fstore` binary and of the real servers the suite starts.

mod cases;
mod cli;
mod contract_dir;
mod export;
mod join;
mod online_ops;
mod online_outage;
mod online_serve;
mod online_store;
mod services;
mod support;
