//! Integration tests against a real `redis-server` that each test starts for itself.

mod chatmrpt;
mod common;
mod e2e;
mod engine;
mod failures;
mod findings;
mod hardening;
mod hostile;
mod pacing;
mod reasons;
mod record;
mod tls;
mod writes;
