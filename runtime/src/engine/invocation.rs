//! What flows into and out of one invocation.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::interrupt::StopHandle;

/// Everything an invocation carries from the API route to the engine, built
/// once and never looked up again.
#[derive(Debug, Clone)]
pub struct InvocationContext {
    pub request_id: String,
    pub service: String,
    pub function: String,
    /// The qualifier the caller used.
    pub qualifier: String,
    /// The version it resolved to (`LATEST` if none).
    pub version_id: String,
    pub task_id: Option<String>,
    /// 0 for the first attempt of a task, then the retry number.
    pub attempt: u32,
    pub deadline: Instant,
    /// The same deadline as Unix epoch milliseconds (what the guest sees).
    pub deadline_unix_ms: u64,
    pub timeout: Duration,
    pub stop: StopHandle,
}

impl InvocationContext {
    /// Starts the clock: the deadline is `timeout` from now.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        request_id: String,
        service: String,
        function: String,
        qualifier: String,
        version_id: String,
        timeout: Duration,
        task_id: Option<String>,
        attempt: u32,
        stop: StopHandle,
    ) -> Self {
        let now_ms = crate::util::now_ms();
        InvocationContext {
            request_id,
            service,
            function,
            qualifier,
            version_id,
            task_id,
            attempt,
            deadline: Instant::now() + timeout,
            deadline_unix_ms: now_ms.saturating_add(timeout.as_millis() as i64) as u64,
            timeout,
            stop,
        }
    }
}

/// Why an invocation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InvokeError {
    /// The guest reported an error itself (an `err` result, a non-zero exit).
    #[error("{0}")]
    Handled(String),
    /// The guest trapped (panic, unreachable, stack overflow, ...).
    #[error("{0}")]
    Trap(String),
    #[error("function timed out after {}", humanize(*.0))]
    Timeout(Duration),
    #[error("function exceeded its memory limit of {0} MB")]
    OutOfMemory(u64),
    #[error("invocation was stopped")]
    Stopped,
    #[error("function output exceeded the response limit")]
    OutputLimit,
    #[error("instance initialization failed: {0}")]
    Initialization(String),
    /// No instance could be had (the pool or the allocator is full).
    #[error("{0}")]
    Capacity(String),
    /// The host failed; not the guest's fault.
    #[error("internal error: {0}")]
    Internal(String),
}

fn humanize(d: Duration) -> String {
    if d.as_millis().is_multiple_of(1000) {
        format!("{} seconds", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

impl InvokeError {
    /// FC's `X-Fc-Error-Type` for this failure.
    pub fn fc_error_type(&self) -> &'static str {
        match self {
            InvokeError::Handled(_) => "HandledInvocationError",
            _ => "UnhandledInvocationError",
        }
    }

    /// The `errorType` of the error body: what kind of failure this was.
    pub fn error_type(&self) -> &'static str {
        match self {
            InvokeError::Handled(_) => "HandledError",
            InvokeError::Trap(_) => "Trap",
            InvokeError::Timeout(_) => "FunctionTimeout",
            InvokeError::OutOfMemory(_) => "OutOfMemory",
            InvokeError::Stopped => "Stopped",
            InvokeError::OutputLimit => "OutputLimitExceeded",
            InvokeError::Initialization(_) => "InitializationError",
            InvokeError::Capacity(_) => "Throttled",
            InvokeError::Internal(_) => "InternalError",
        }
    }

    /// True when the instance that produced this error may serve again.
    pub fn instance_survives(&self) -> bool {
        matches!(self, InvokeError::Handled(_))
    }
}

/// The outcome of one invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub result: Result<Bytes, InvokeError>,
    /// Captured stdout + stderr (bounded).
    pub log: Bytes,
    pub duration: Duration,
    pub peak_memory_bytes: u64,
    pub instance_id: String,
}

impl Invocation {
    /// Peak memory in MB, rounded up (FC's `X-Fc-Max-Memory-Usage`).
    pub fn peak_memory_mb(&self) -> u64 {
        self.peak_memory_bytes.div_ceil(1 << 20)
    }

    /// The last `n` bytes of the log (FC's log tail is 4 KB).
    pub fn log_tail(&self, n: usize) -> &[u8] {
        let len = self.log.len();
        &self.log[len.saturating_sub(n)..]
    }
}
