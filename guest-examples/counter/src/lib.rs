//! `counter`: counts the events its instance has served and the times its
//! initializer ran. State in globals survives between warm invocations of one
//! instance, as in FC; a new instance starts from zero.

use std::sync::atomic::{AtomicU64, Ordering};
use wasmfc_guest::Context;

static EVENTS: AtomicU64 = AtomicU64::new(0);
static INITIALIZED: AtomicU64 = AtomicU64::new(0);

fn initialize(_ctx: &Context) -> Result<(), String> {
    INITIALIZED.fetch_add(1, Ordering::SeqCst);
    println!("counter: initializer ran");
    Ok(())
}

fn handle(_ctx: &Context, _event: Vec<u8>) -> Result<Vec<u8>, String> {
    let events = EVENTS.fetch_add(1, Ordering::SeqCst) + 1;
    let initialized = INITIALIZED.load(Ordering::SeqCst);
    Ok(format!("{{\"events\":{events},\"initialized\":{initialized}}}").into_bytes())
}

wasmfc_guest::export_handler!(handle, init = initialize);
