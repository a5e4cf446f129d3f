//! m365mon: a Prometheus exporter that probes many Microsoft 365 tenants
//! ("subscriptions") through Entra ID and Microsoft Graph.
//!
//! # Layout
//! - [`cli`], [`run`]: flags and what each command does; `main.rs` only calls [`run::run`].
//! - [`config`]: the YAML model, loading and validation (file:line errors).
//! - [`auth`]: token requests (secret, certificate assertion, federated, refresh token), cache, single
//!   flight, back-off; the device code flow and the token store of delegated sign-ins.
//! - [`login`], [`consent`]: `m365mon login`/`logout`/`consent-url`, admin consent URLs and permissions.
//! - [`graph`]: Graph requests, their status-to-outcome mapping, and Outlook's per-mailbox concurrency limit.
//! - [`probe`]: one file per probe kind behind [`probe::run`]; outcomes carry a bounded [`probe::FailureReason`].
//! - [`runner`]: one run of one probe: no overlap, concurrency limit, throttling gates, timeout.
//! - [`scheduler`]: one task per (subscription, probe) at a stable phase.
//! - [`state`], [`metrics`]: latest results and counters; exposition built on each scrape.
//! - [`app`]: the running exporter and reload; [`http`], [`landing`]: its endpoints.
//! - [`discovery`]: partner tenants whose GDAP customers become subscriptions.
//! - [`web`]: the HTTP accept loop, TLS and basic auth (exporter-toolkit web config).
//! - [`sim`]: the Entra ID and Graph simulator used by tests and `m365mon demo`; [`demo`] wires it up.
//! - [`logging`]: logfmt or JSON logs.
//! - [`text`]: bounding external text without splitting a character.

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod consent;
pub mod demo;
pub mod discovery;
pub mod graph;
pub mod http;
pub mod landing;
pub mod logging;
pub mod login;
pub mod metrics;
pub mod probe;
pub mod run;
pub mod runner;
pub mod scheduler;
pub mod sim;
pub mod state;
pub mod text;
pub mod web;
