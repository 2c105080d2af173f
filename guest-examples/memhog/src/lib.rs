//! `memhog`: allocates and touches 1 MiB blocks until the runtime refuses to
//! grow its memory. The event may cap the MiB to allocate (then it succeeds).

use wasmfc_guest::Context;

fn handle(_ctx: &Context, event: Vec<u8>) -> Result<Vec<u8>, String> {
    let cap_mib: usize = String::from_utf8_lossy(&event).trim().parse().unwrap_or(usize::MAX);
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    while blocks.len() < cap_mib {
        // Allocation failure aborts (a trap), which is what the test expects.
        let mut block = vec![0u8; 1 << 20];
        block[0] = 1;
        block[(1 << 20) - 1] = 1;
        blocks.push(std::hint::black_box(block));
        eprintln!("memhog: holding {} MiB", blocks.len());
    }
    Ok(format!("held {} MiB", blocks.len()).into_bytes())
}

wasmfc_guest::export_handler!(handle);
