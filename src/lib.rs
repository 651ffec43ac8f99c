//! sessiontop: a terminal dashboard for the Redis databases that web applications keep their
//! user sessions in.
//!
//! Data flows one way: Redis -> [`conn`] -> [`collect`] -> [`engine`] -> the fronts
//! ([`dashboard`], [`headless`]); user intent flows back as key -> action -> request ->
//! command. Each folder may use only the folders below it (`tests/layering.rs` holds it so):
//!
//! - [`util`], [`decode`]: terminal-safe text, capped file reads, memory; bytes to values.
//! - [`conn`]: what talks to Redis: targets, links, the topology of nodes, pacing, `INFO`.
//! - [`engine`]: what sessiontop knows, with no I/O: layouts, sessions, the model, the
//!   table's rows, findings, history.
//! - [`collect`]: the background tasks that read (and, when asked, write) on a budget.
//! - [`export`]: recordings and Prometheus metrics, beside whichever front runs.
//! - [`cli`], [`config`], [`setup`]: flags, the config file, and where they meet.
//! - [`dashboard`], [`headless`]: the terminal dashboard; the one-shot commands.
//! - [`demo`]: a throwaway store with simulated traffic; [`run`]: dispatch.

pub mod cli;
pub mod collect;
pub mod config;
pub mod conn;
pub mod dashboard;
pub mod decode;
pub mod demo;
pub mod engine;
pub mod export;
pub mod headless;
pub mod run;
pub mod serve;
pub mod setup;
pub mod util;
