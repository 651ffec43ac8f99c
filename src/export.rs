//! What a watch publishes beyond the screen: recordings of every figure and finding
//! ([`record`]) and the figures for Prometheus ([`metrics`]).

pub mod metrics;
pub mod record;
