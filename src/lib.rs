//! callrouter: routes tenant calls of a shared social-housing call-reception platform to the right
//! landlord's right team, and holds the resulting ticket queues.
//!
//! - [`routing`]: the pure core — address matching, calendar, rules, the decision. No I/O.
//! - [`config`]: loading and validating a deployment (configuration files and registries) into a
//!   [`routing::Router`].
//! - [`registry`]: the reference data and registries (communes, buildings, tenants).
//! - [`explain`]: the JSON request/decision format of the `explain` dry-run command.
//! - [`datagen`]: the deterministic generator of the demo building and tenant registries.
//! - [`spellings`]: the deterministic generator of caller spellings of registry addresses.
//! - [`store`]: the queue store (Redis, and an in-memory one for a single instance).
//! - [`api`]: the gRPC service around the core and the store: contract, auth, server.
//! - [`serve`]: `callrouter serve` — options, logging, admin listener, signals.
//! - [`metrics`]: Prometheus metrics with bounded labels.
//! - [`loadgen`]: `callrouter load`, the load generator.
//! - [`logging`]: log lines written to standard error off the request's path, in batches.

pub mod api;
pub mod app;
pub mod config;
pub mod datagen;
pub mod diagnostics;
pub mod explain;
pub mod loadgen;
pub mod logging;
pub mod metrics;
pub mod registry;
pub mod routing;
pub mod serve;
pub mod spellings;
pub mod store;
