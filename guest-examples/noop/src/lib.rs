//! `noop`: returns an empty result at once. Benchmarks use it to measure
//! what wasmfc itself costs per invocation or task.

use wasmfc_guest::Context;

fn handle(_ctx: &Context, _event: Vec<u8>) -> Result<Vec<u8>, String> {
    Ok(Vec::new())
}

wasmfc_guest::export_handler!(handle);
