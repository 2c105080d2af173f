//! `square`: an activity for the `fan-out` orchestrator. The event is a
//! number (or a JSON string holding one); the result is its square.

use wasmfc_guest::Context;

fn handle(_ctx: &Context, event: Vec<u8>) -> Result<Vec<u8>, String> {
    let text = String::from_utf8_lossy(&event);
    let text = text.trim().trim_matches('"');
    let n: i64 = text
        .parse()
        .map_err(|_| format!("square: '{text}' is not a whole number"))?;
    let square = n.checked_mul(n).ok_or_else(|| format!("square: {n}² overflows"))?;
    Ok(square.to_string().into_bytes())
}

wasmfc_guest::export_handler!(handle);
