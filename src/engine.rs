//! What sessiontop knows, with no I/O: session layouts ([`layout`]), ids and keys as bytes
//! ([`names`]), sessions and their reports ([`domain`]), the messages between collectors and
//! fronts ([`msg`]), the one state a front shows ([`model`]), the table's rows ([`table`]),
//! findings ([`diagnose`]), a day of figures ([`history`]), and the wording both fronts share
//! ([`present`], [`summary`]).

pub mod causes;
pub mod clients;
pub mod diagnose;
pub mod domain;
pub mod flow;
pub mod history;
pub mod layout;
pub mod model;
pub mod msg;
pub mod names;
pub mod nodes;
pub mod present;
pub mod summary;
pub mod table;
