//! `hello`: greets the event. The event is a name, a JSON string, or a JSON
//! object with a `name`; the greeting word comes from the `GREETING`
//! environment variable (default `Hello`).

use wasmfc_guest::Context;

fn name_of(event: &[u8]) -> String {
    let text = String::from_utf8_lossy(event);
    let text = text.trim();
    if text.is_empty() {
        return "world".to_string();
    }
    if let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        return inner.to_string();
    }
    if text.starts_with('{') {
        // A tiny scan for "name":"..." keeps the guest free of a JSON crate.
        if let Some(at) = text.find("\"name\"") {
            let rest = &text[at + 6..];
            if let Some(start) = rest.find('"') {
                let rest = &rest[start + 1..];
                if let Some(end) = rest.find('"') {
                    return rest[..end].to_string();
                }
            }
        }
    }
    text.to_string()
}

fn handle(ctx: &Context, event: Vec<u8>) -> Result<Vec<u8>, String> {
    let greeting = std::env::var("GREETING").unwrap_or_else(|_| "Hello".to_string());
    let name = name_of(&event);
    println!("hello: greeting {name} (request {})", ctx.request_id);
    Ok(format!("{greeting} {name}!").into_bytes())
}

wasmfc_guest::export_handler!(handle);
