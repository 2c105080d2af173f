//! Black-box integration tests: each test starts the real `wasmfc` binary
//! on an ephemeral port and a private data dir.

mod bulk;
mod cli;
mod cluster;
mod console;
mod console_browser;
mod crash;
mod delay;
mod deploy;
mod fc3;
mod foundation;
mod fuzz;
mod hardening;
mod http_functions;
mod instances;
mod limits;
mod orchestrations;
mod pool;
mod postgres_store;
mod provision;
mod restart;
mod script_guests;
mod sdk;
mod tasks;
