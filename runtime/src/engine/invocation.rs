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

/// Which function version an invocation runs, as its caller named it.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub service: String,
    pub function: String,
    /// The qualifier the caller used.
    pub qualifier: String,
    /// The version it resolved to (`LATEST` if none).
    pub version_id: String,
}

impl InvocationContext {
    /// A synchronous request (InvokeFunction, an HTTP trigger, a
    /// provisioned instance's initializer): no task, and a stop handle of
    /// its own. Starts the clock: the deadline is `timeout` from now.
    pub fn request(request_id: String, target: Target, timeout: Duration) -> Self {
        Self::build(request_id, target, timeout, None, 0, StopHandle::new())
    }

    /// One attempt of a task (`attempt` 0 is the first), stoppable through
    /// `stop`.
    pub fn task_attempt(
        request_id: String,
        target: Target,
        timeout: Duration,
        task_id: String,
        attempt: u32,
        stop: StopHandle,
    ) -> Self {
        Self::build(request_id, target, timeout, Some(task_id), attempt, stop)
    }

    /// A run that serves no request (an orchestrator pass): only a deadline
    /// and a stop handle.
    pub fn internal(timeout: Duration, stop: StopHandle) -> Self {
        Self::build(String::new(), Target::default(), timeout, None, 0, stop)
    }

    /// The same invocation facts with a deadline `timeout` from now (an
    /// initializer runs under its own timeout).
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        let mut ctx = self.clone();
        ctx.deadline = Instant::now() + timeout;
        ctx.deadline_unix_ms = deadline_unix_ms(timeout);
        ctx.timeout = timeout;
        ctx
    }

    fn build(
        request_id: String,
        target: Target,
        timeout: Duration,
        task_id: Option<String>,
        attempt: u32,
        stop: StopHandle,
    ) -> Self {
        let Target {
            service,
            function,
            qualifier,
            version_id,
        } = target;
        InvocationContext {
            request_id,
            service,
            function,
            qualifier,
            version_id,
            task_id,
            attempt,
            deadline: Instant::now() + timeout,
            deadline_unix_ms: deadline_unix_ms(timeout),
            timeout,
            stop,
        }
    }
}

fn deadline_unix_ms(timeout: Duration) -> u64 {
    crate::util::now_ms().saturating_add(timeout.as_millis() as i64) as u64
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
    /// The guest used up its function's `fuelBudget`.
    #[error("function exhausted its fuel budget of {0} (fuelBudget)")]
    FuelExhausted(u64),
    /// The function is of another kind than this way of invoking expects
    /// (an HTTP function through InvokeFunction, an event function through
    /// an HTTP trigger, an orchestrator anywhere but the orchestration API).
    #[error("{0}")]
    WrongGuestKind(String),
    #[error("instance initialization failed: {0}")]
    Initialization(String),
    /// No instance could be had (the pool or the allocator is full).
    #[error("{0}")]
    Capacity(String),
    /// The function's reserved concurrency (its ConcurrencyConfig) was in
    /// use by other invocations for as long as this one could wait.
    #[error("the function's reserved concurrency of {0} is in use by other invocations")]
    ConcurrencyLimit(u64),
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
            // Invoking a function the wrong way is the caller's mistake, as
            // a handled error is the guest's own answer: neither is a crash.
            InvokeError::Handled(_) | InvokeError::WrongGuestKind(_) => "HandledInvocationError",
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
            InvokeError::FuelExhausted(_) => "FuelExhausted",
            InvokeError::WrongGuestKind(_) => "WrongGuestKind",
            InvokeError::Initialization(_) => "InitializationError",
            InvokeError::Capacity(_) | InvokeError::ConcurrencyLimit(_) => "Throttled",
            InvokeError::Internal(_) => "InternalError",
        }
    }

    /// An HTTP function reached through InvokeFunction.
    pub fn http_function() -> InvokeError {
        InvokeError::WrongGuestKind(
            "this is an HTTP function (a wasi:http component): invoke it through its HTTP trigger".into(),
        )
    }

    /// An event function reached through an HTTP trigger.
    pub fn event_function() -> InvokeError {
        InvokeError::WrongGuestKind(
            "this is an event function: invoke it with InvokeFunction, not through an HTTP trigger".into(),
        )
    }

    /// An orchestrator reached through anything but the orchestration API.
    pub fn orchestrator_function() -> InvokeError {
        InvokeError::WrongGuestKind(
            "this function is an orchestrator: start it through the orchestration API \
             (POST /runtime/webhooks/durabletask/orchestrators/{name})"
                .into(),
        )
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
    /// Fuel the guest consumed, when the server meters fuel.
    pub fuel_consumed: Option<u64>,
}

impl Invocation {
    /// An invocation that failed before its guest ran.
    pub fn failed(error: InvokeError, instance_id: String) -> Invocation {
        Invocation {
            result: Err(error),
            log: Bytes::new(),
            duration: Duration::ZERO,
            peak_memory_bytes: 0,
            instance_id,
            fuel_consumed: None,
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every error type an invocation can answer with is a stable code with
    /// a page under docs/errors/ (cause and fix).
    #[test]
    fn every_error_type_has_its_page() {
        let all = [
            InvokeError::Handled(String::new()),
            InvokeError::Trap(String::new()),
            InvokeError::Timeout(Duration::from_secs(1)),
            InvokeError::OutOfMemory(1),
            InvokeError::Stopped,
            InvokeError::OutputLimit,
            InvokeError::FuelExhausted(1),
            InvokeError::WrongGuestKind(String::new()),
            InvokeError::Initialization(String::new()),
            InvokeError::Capacity(String::new()),
            InvokeError::Internal(String::new()),
        ];
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/errors");
        for e in all {
            let page = docs.join(format!("{}.md", e.error_type()));
            assert!(page.exists(), "{} has no page at {}", e.error_type(), page.display());
        }
    }
}
