//! Per-store resource limits.
//!
//! `memorySize` bounds the *total* linear memory of an instance. Growth past
//! it is refused (`memory.grow` returns -1, as the wasm spec allows), the
//! refusal is remembered, and a trap that follows is reported as
//! out-of-memory rather than a generic trap. The limiter also tracks the peak
//! so responses can carry `X-Fc-Max-Memory-Usage`.

use wasmtime::ResourceLimiter;

/// Guest tables are host memory too; this bounds one table (elements).
const MAX_TABLE_ELEMENTS: usize = 100_000;

#[derive(Debug)]
pub struct MemoryLimiter {
    limit_bytes: usize,
    current_bytes: usize,
    peak_bytes: usize,
    refused: bool,
}

impl MemoryLimiter {
    pub fn new(limit_bytes: usize) -> Self {
        MemoryLimiter {
            limit_bytes,
            current_bytes: 0,
            peak_bytes: 0,
            refused: false,
        }
    }

    pub fn limit_bytes(&self) -> usize {
        self.limit_bytes
    }

    /// Starts a new invocation's accounting: the peak restarts from what the
    /// instance holds now, and earlier refusals are forgotten.
    pub fn reset_invocation(&mut self) {
        self.peak_bytes = self.current_bytes;
        self.refused = false;
    }

    pub fn peak_bytes(&self) -> usize {
        self.peak_bytes
    }

    pub fn current_bytes(&self) -> usize {
        self.current_bytes
    }

    /// True when a growth was refused during this invocation.
    pub fn refused(&self) -> bool {
        self.refused
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let grow = desired.saturating_sub(current);
        if self.current_bytes + grow > self.limit_bytes {
            self.refused = true;
            return Ok(false);
        }
        self.current_bytes += grow;
        self.peak_bytes = self.peak_bytes.max(self.current_bytes);
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // The allocator could not back a growth we had accounted for.
        self.refused = true;
        Ok(())
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit_and_tracks_peak() {
        let mut l = MemoryLimiter::new(10 << 20);
        assert!(l.memory_growing(0, 4 << 20, None).unwrap());
        assert!(l.memory_growing(4 << 20, 8 << 20, None).unwrap());
        assert!(!l.memory_growing(8 << 20, 12 << 20, None).unwrap());
        assert!(l.refused());
        assert_eq!(l.peak_bytes(), 8 << 20);
        l.reset_invocation();
        assert!(!l.refused());
        assert_eq!(l.peak_bytes(), 8 << 20);
    }
}
