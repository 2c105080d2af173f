//! `fail`: always reports a handled error (FC's `HandledInvocationError`).

use wasmfc_guest::Context;

fn handle(_ctx: &Context, event: Vec<u8>) -> Result<Vec<u8>, String> {
    eprintln!("fail: about to fail");
    Err(format!("boom: {}", String::from_utf8_lossy(&event)))
}

wasmfc_guest::export_handler!(handle);
