//! What talks to Redis: where a target is and how to reach it ([`target`]), one connection with
//! its failures sorted and its commands counted ([`link`]), what sessiontop's commands cost the
//! server and pacing by it ([`pace`]), what `INFO` says ([`info`]), and what a target is made of: its nodes, each with its own
//! connections, pacer and load account ([`topology`]).

pub mod cluster;
pub mod info;
pub mod link;
pub mod pace;
pub mod route;
pub mod sentinel;
pub mod slot;
pub mod target;
pub mod topology;
