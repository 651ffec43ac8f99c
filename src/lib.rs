//! sessiontop: a terminal dashboard for the Redis databases that web applications keep their
//! user sessions in.
//!
//! Data flows one way: Redis -> collectors ([`collect`]) -> [`model`] -> view; user intent flows
//! back as key -> action ([`action`]) -> command.

pub mod action;
pub mod app;
pub mod cli;
pub mod collect;
pub mod config;
pub mod dashboard;
pub mod decode;
pub mod demo;
pub mod diagnose;
pub mod domain;
pub mod headless;
pub mod history;
pub mod info;
pub mod keymap;
pub mod layout;
pub mod link;
pub mod local_file;
pub mod local_redis;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod msg;
pub mod names;
pub mod output;
pub mod pace;
pub mod present;
pub mod record;
pub mod replay;
pub mod report;
pub mod run;
pub mod screen;
pub mod series;
pub mod setup;
pub mod store;
pub mod summary;
pub mod target;
pub mod text;
pub mod theme;
pub mod tree;
pub mod ui;
