//! Integration tests of the definition language: golden cases and the never-panic property.

mod golden;
mod no_panic;
