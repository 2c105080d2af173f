//! The wasmfc guest SDK: write an event function as one Rust function.
//!
//! ```ignore
//! fn handle(ctx: &wasmfc_guest::Context, event: Vec<u8>) -> Result<Vec<u8>, String> {
//!     Ok(format!("hello from {}", ctx.function_name).into_bytes())
//! }
//! wasmfc_guest::export_handler!(handle);
//! ```
//!
//! Build with `cargo build --target wasm32-wasip2`; the result is a component
//! exporting the `wasmfc:function/handler` interface of `wit/function.wit`.
//! Anything the handler prints to stdout or stderr is captured into the
//! invocation's log (FC's log tail); the event's result is the returned bytes.
//! Returning `Err` reports a *handled* error (`HandledInvocationError`); a
//! panic traps and is reported as an *unhandled* one.

pub mod orchestration;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "event-function",
        pub_export_macro: true,
        export_macro_name: "__export_event_function",
        default_bindings_module: "wasmfc_guest::bindings",
    });
}

use bindings::wasmfc::function::types::Context as WitContext;

/// What the runtime tells a handler about the invocation it serves.
#[derive(Debug, Clone)]
pub struct Context {
    pub request_id: String,
    pub service_name: String,
    pub function_name: String,
    /// The qualifier the caller used (`LATEST`, a version or an alias).
    pub qualifier: String,
    /// The version the qualifier resolved to (`LATEST` if none).
    pub version_id: String,
    /// Wall-clock deadline, Unix epoch milliseconds.
    pub deadline_ms: u64,
    pub memory_limit_mb: u32,
    /// The task id, for task-mode (stateful async) invocations.
    pub task_id: Option<String>,
    /// 0 on the first attempt, then the retry number.
    pub attempt: u32,
}

impl From<WitContext> for Context {
    fn from(c: WitContext) -> Self {
        Context {
            request_id: c.request_id,
            service_name: c.service_name,
            function_name: c.function_name,
            qualifier: c.qualifier,
            version_id: c.version_id,
            deadline_ms: c.deadline_ms,
            memory_limit_mb: c.memory_limit_mb,
            task_id: c.task_id,
            attempt: c.attempt,
        }
    }
}

impl Context {
    /// Milliseconds left before the runtime interrupts this invocation.
    pub fn remaining_ms(&self) -> u64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.deadline_ms.saturating_sub(now)
    }
}

/// The signature of an event handler.
pub type HandlerFn = fn(&Context, Vec<u8>) -> Result<Vec<u8>, String>;
/// The signature of an initializer.
pub type InitializerFn = fn(&Context) -> Result<(), String>;

#[doc(hidden)]
pub fn __call_handler(f: HandlerFn, ctx: WitContext, event: Vec<u8>) -> Result<Vec<u8>, String> {
    f(&ctx.into(), event)
}

#[doc(hidden)]
pub fn __call_initializer(f: Option<InitializerFn>, ctx: WitContext) -> Result<(), String> {
    match f {
        Some(f) => f(&ctx.into()),
        None => Ok(()),
    }
}

/// Export `handler` (and optionally an initializer) as this component's
/// event function.
///
/// `export_handler!(handle)` or `export_handler!(handle, init = setup)`, where
/// `handle: fn(&Context, Vec<u8>) -> Result<Vec<u8>, String>` and
/// `setup: fn(&Context) -> Result<(), String>`. The initializer runs once per
/// instance, before its first event, when the function sets `initializer`.
#[macro_export]
macro_rules! export_handler {
    ($handler:path) => {
        $crate::export_handler!(@inner $handler, ::core::option::Option::None);
    };
    ($handler:path, init = $init:path) => {
        $crate::export_handler!(@inner $handler, ::core::option::Option::Some($init as $crate::InitializerFn));
    };
    (@inner $handler:path, $init:expr) => {
        struct __WasmfcGuest;
        impl $crate::bindings::exports::wasmfc::function::handler::Guest for __WasmfcGuest {
            fn handle(
                ctx: $crate::bindings::wasmfc::function::types::Context,
                event: ::std::vec::Vec<u8>,
            ) -> ::core::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
                $crate::__call_handler($handler, ctx, event)
            }
        }
        impl $crate::bindings::exports::wasmfc::function::lifecycle::Guest for __WasmfcGuest {
            fn initialize(
                ctx: $crate::bindings::wasmfc::function::types::Context,
            ) -> ::core::result::Result<(), ::std::string::String> {
                $crate::__call_initializer($init, ctx)
            }
        }
        $crate::bindings::__export_event_function!(__WasmfcGuest with_types_in $crate::bindings);
    };
}
