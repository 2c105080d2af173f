//! wasmfc: a self-hosted WebAssembly function runtime, wire-compatible with
//! Alibaba Cloud Function Compute 2.0.
//!
//! Data flows one way: `api → (registry | scheduler) → pool → engine`, with
//! `store` under `registry` and `scheduler`. See `docs/architecture.md`.

pub mod api;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod durable;
pub mod engine;
pub mod journal;
pub mod metrics;
pub mod pool;
pub mod provision;
pub mod registry;
pub mod scheduler;
pub mod store;
pub mod tasks;
pub mod util;
