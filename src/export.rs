//! What a watch publishes beyond the screen: recordings of every figure and finding
//! ([`record`]), the figures for Prometheus ([`metrics`]), both run beside a watch
//! ([`exports`]), and the findings' changes they and `serve`'s log write ([`changes`]).

pub mod changes;
pub mod exports;
pub mod metrics;
pub mod record;
