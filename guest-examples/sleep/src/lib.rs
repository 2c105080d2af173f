//! `sleep`: sleeps in a host call, then answers. The event is the number of
//! milliseconds (or `{"ms": N}`); it is the guest for task-mode tests, where
//! Stop has to cancel a guest parked in a host call.

use wasmfc_guest::Context;

fn millis(event: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(event);
    let digits: String = text.chars().filter(|c| c.is_ascii_digit()).collect();
    digits.parse().unwrap_or(100)
}

fn handle(ctx: &Context, event: Vec<u8>) -> Result<Vec<u8>, String> {
    let ms = millis(&event);
    println!("sleep: {ms} ms (attempt {})", ctx.attempt);
    std::thread::sleep(std::time::Duration::from_millis(ms));
    Ok(format!("slept {ms} ms").into_bytes())
}

wasmfc_guest::export_handler!(handle);
