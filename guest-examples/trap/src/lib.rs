//! `trap`: panics, which traps the instance (`UnhandledInvocationError`).

use wasmfc_guest::Context;

fn handle(_ctx: &Context, event: Vec<u8>) -> Result<Vec<u8>, String> {
    if event == b"ok" {
        return Ok(b"no trap".to_vec());
    }
    panic!("trap: deliberate panic");
}

wasmfc_guest::export_handler!(handle);
