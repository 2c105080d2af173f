//! Small shared helpers: time and ids.

use chrono::{DateTime, SecondsFormat, Utc};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// FC's resource timestamp: ISO-8601 UTC with whole seconds,
/// e.g. `2026-11-22T10:53:11Z`.
pub fn iso_now() -> String {
    iso_ms(now_ms())
}

pub fn iso_ms(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A new request id (FC uses UUIDs).
pub fn new_request_id() -> String {
    // Encoded directly rather than through `Display`: the formatting
    // machinery cost more than drawing the random id.
    let mut text = uuid::Uuid::encode_buffer();
    uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text).to_string()
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a
/// crash never leaves half a file under the real name.
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
