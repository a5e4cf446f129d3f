//! m365mon: a Prometheus exporter that probes many Microsoft 365 tenants.
//!
//! # Layout
//! - [`config`]: the YAML model, loading and validation (file:line errors).
//! - [`web`]: the HTTP accept loop, TLS and basic auth (exporter-toolkit web config).
//! - [`sim`]: the Entra ID and Graph simulator used by tests and `m365mon demo`.

pub mod auth;
pub mod config;
pub mod graph;
pub mod metrics;
pub mod probe;
pub mod runner;
pub mod scheduler;
pub mod sim;
pub mod state;
pub mod web;
