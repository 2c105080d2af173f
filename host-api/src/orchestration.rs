//! Orchestrators: durable workflows written as plain sequential Rust.
//!
//! ```ignore
//! use wasmfc_guest::orchestration::Orchestration;
//!
//! fn run(o: &Orchestration, input: String) -> Result<String, String> {
//!     let a = o.call_function("hello", "\"Tokyo\"")?;
//!     let b = o.call_function("hello", "\"London\"")?;
//!     Ok(format!("[{a},{b}]"))
//! }
//! wasmfc_guest::export_orchestrator!(run);
//! ```
//!
//! The runtime re-runs `run` from the start whenever something the
//! orchestrator waits for has happened, answering earlier calls from the
//! instance's journal. Code therefore has to reach the same calls in the
//! same order each time: use [`Orchestration::now`] and
//! [`Orchestration::new_guid`], never the system clock or random numbers
//! (the runtime makes those deterministic anyway, and fails the instance with
//! a non-determinism error naming the step if a re-run diverges).

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "orchestrator-function",
        pub_export_macro: true,
        export_macro_name: "__export_orchestrator_function",
        default_bindings_module: "wasmfc_guest::orchestration::bindings",
    });
}

use std::time::Duration;

use bindings::wasmfc::function::orchestration as host;

pub use host::RetryPolicy;

/// One activity of [`Orchestration::call_functions`].
#[derive(Debug, Clone)]
pub struct Activity {
    pub name: String,
    /// The activity's event: JSON text.
    pub input: String,
    pub retry: Option<RetryPolicy>,
}

impl Activity {
    pub fn new(name: impl Into<String>, input: impl Into<String>) -> Activity {
        Activity {
            name: name.into(),
            input: input.into(),
            retry: None,
        }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Activity {
        self.retry = Some(retry);
        self
    }
}

/// A retry policy: `max_attempts` in all, waiting `first_interval` before
/// the second, doubling each time up to `first_interval * 64`.
pub fn retry(max_attempts: u32, first_interval: Duration) -> RetryPolicy {
    let first = first_interval.as_millis() as u64;
    RetryPolicy {
        max_attempts,
        first_retry_interval_ms: first,
        backoff_coefficient: 2.0,
        max_retry_interval_ms: first.saturating_mul(64),
    }
}

/// The orchestration context handed to `run`.
#[derive(Debug)]
pub struct Orchestration {
    _private: (),
}

impl Orchestration {
    /// Calls the function `name` (same service) with `input` (JSON text) as
    /// a durable step: `Ok` with its output as JSON text, `Err` with its
    /// failure.
    pub fn call_function(&self, name: &str, input: &str) -> Result<String, String> {
        host::call_function(name, input, None)
    }

    /// [`Self::call_function`], retried per `retry` before a failure is
    /// returned.
    pub fn call_function_with_retry(&self, name: &str, input: &str, retry: RetryPolicy) -> Result<String, String> {
        host::call_function(name, input, Some(retry))
    }

    /// Calls several functions at once (fan-out) and waits for all of them
    /// (fan-in); results in call order.
    pub fn call_functions(&self, calls: &[Activity]) -> Vec<Result<String, String>> {
        let calls: Vec<host::ActivityCall> = calls
            .iter()
            .map(|a| host::ActivityCall {
                name: a.name.clone(),
                input: a.input.clone(),
                retry: a.retry,
            })
            .collect();
        host::call_functions(&calls)
    }

    /// Waits for the external event `name`; `None` if `timeout` passes
    /// first. Returns the event's data as JSON text.
    pub fn wait_for_event(&self, name: &str, timeout: Option<Duration>) -> Option<String> {
        host::wait_for_event(name, timeout.map(|t| t.as_millis() as u64))
    }

    /// Waits `delay` on a durable timer.
    pub fn sleep(&self, delay: Duration) {
        host::create_timer(delay.as_millis() as u64)
    }

    /// Sets the instance's `customStatus` (JSON text).
    pub fn set_custom_status(&self, status_json: &str) {
        host::set_custom_status(status_json)
    }

    /// Restarts the instance with `input` and an empty history.
    pub fn continue_as_new(&self, input: &str) -> ! {
        host::continue_as_new(input);
        unreachable!("continue-as-new does not return")
    }

    /// The orchestration clock, Unix epoch milliseconds (deterministic).
    pub fn now(&self) -> u64 {
        host::now()
    }

    /// A deterministic GUID.
    pub fn new_guid(&self) -> String {
        host::new_guid()
    }

    pub fn instance_id(&self) -> String {
        host::instance_id()
    }

    /// True while re-running steps the journal already holds; use it to
    /// keep logs from repeating.
    pub fn is_replaying(&self) -> bool {
        host::is_replaying()
    }
}

/// The signature of an orchestrator.
pub type OrchestratorFn = fn(&Orchestration, String) -> Result<String, String>;

#[doc(hidden)]
pub fn __run(f: OrchestratorFn, input: String) -> Result<String, String> {
    f(&Orchestration { _private: () }, input)
}

/// Exports `run: fn(&Orchestration, String) -> Result<String, String>` as
/// this component's orchestrator.
#[macro_export]
macro_rules! export_orchestrator {
    ($run:path) => {
        struct __WasmfcOrchestrator;
        impl $crate::orchestration::bindings::exports::wasmfc::function::orchestrator::Guest for __WasmfcOrchestrator {
            fn run(input: ::std::string::String) -> ::core::result::Result<::std::string::String, ::std::string::String> {
                $crate::orchestration::__run($run, input)
            }
        }
        $crate::orchestration::bindings::__export_orchestrator_function!(
            __WasmfcOrchestrator with_types_in $crate::orchestration::bindings
        );
    };
}
