//! Black-box integration tests: each test starts the real `wasmfc` binary
//! on an ephemeral port and a private data dir.

mod crash;
mod foundation;
mod limits;
mod restart;
mod sdk;
mod tasks;
