//! Integration tests against a real `redis-server` that each test starts for itself.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test, a bench or a generator: a failure should stop it loudly

mod causes;
mod chatmrpt;
mod clients;
mod cluster;
mod common;
mod doctor;
mod e2e;
mod engine;
mod events;
mod failures;
mod findings;
mod hardening;
mod hostile;
mod pacing;
mod reasons;
mod record;
mod sentinel;
mod serve;
mod slowlog;
pub mod tls;
mod writes;
