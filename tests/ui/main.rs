//! The dashboard without a terminal: update logic driven by key presses and collector updates,
//! and every view rendered with ratatui's `TestBackend` at 80x24 and 160x48 and checked with
//! insta snapshots, with the cells whose colour carries meaning asserted explicitly.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test, a bench or a generator: a failure should stop it loudly

mod fixtures;
mod keys;
mod props;
mod views;
