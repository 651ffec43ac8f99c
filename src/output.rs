//! How the headless commands print: [`json`] for scripts, [`text`] for people. Both read the
//! same data the commands gathered; neither talks to Redis.

pub mod json;
pub mod text;
