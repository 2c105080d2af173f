//! `spin`: burns CPU. The event is a number of iterations; empty or `0` spins
//! forever (until the timeout or a Stop interrupts it).

use wasmfc_guest::Context;

fn handle(_ctx: &Context, event: Vec<u8>) -> Result<Vec<u8>, String> {
    let iterations: u64 = String::from_utf8_lossy(&event).trim().parse().unwrap_or(0);
    let mut acc: u64 = 0;
    let mut i: u64 = 0;
    loop {
        acc = std::hint::black_box(acc.wrapping_mul(6364136223846793005).wrapping_add(i));
        i += 1;
        if iterations != 0 && i >= iterations {
            break;
        }
    }
    Ok(format!("spun {i} iterations: {acc}").into_bytes())
}

wasmfc_guest::export_handler!(handle);
