//! Event functions: components exporting `wasmfc:function/handler`, kept
//! warm and called once per invocation, and WASI preview-1 commands, run
//! from `_start` once per invocation with the event on stdin.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use wasmtime::Store;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{I32Exit, WasiCtx, WasiCtxView, WasiView};

use super::Engine;
use super::call::{CallEnd, classify, instantiate_error, race};
use super::capture::Capture;
use super::interrupt::StopHandle;
use super::invocation::{Invocation, InvocationContext, InvokeError};
use super::sandbox::{self, Bounds, InstanceSettings, Sandboxed};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../host-api/wit",
        world: "event-function",
        exports: { default: async },
    });
}

pub(super) use bindings::exports::wasmfc::function::{handler, lifecycle};
use bindings::wasmfc::function::types::Context as WitContext;

/// Store data of a command module.
pub struct CommandState {
    pub wasi: WasiP1Ctx,
    bounds: Bounds,
}

/// Store data of a component.
pub struct ComponentState {
    wasi: WasiCtx,
    table: ResourceTable,
    bounds: Bounds,
}

sandbox::impl_sandboxed!(CommandState, ComponentState);

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn wit_context(ctx: &InvocationContext, memory_limit_mb: u64) -> WitContext {
    WitContext {
        request_id: ctx.request_id.clone(),
        service_name: ctx.service.clone(),
        function_name: ctx.function.clone(),
        qualifier: ctx.qualifier.clone(),
        version_id: ctx.version_id.clone(),
        deadline_ms: ctx.deadline_unix_ms,
        memory_limit_mb: memory_limit_mb.min(u32::MAX as u64) as u32,
        task_id: ctx.task_id.clone(),
        attempt: ctx.attempt,
    }
}

/// Brings `slot`'s context record up to date with `ctx` without allocating
/// where the strings fit (see `EventInstance::wit_ctx`).
fn reuse_wit_context<'a>(
    slot: &'a mut Option<WitContext>,
    ctx: &InvocationContext,
    memory_limit_mb: u64,
) -> &'a WitContext {
    fn assign(to: &mut String, from: &str) {
        if to != from {
            to.clear();
            to.push_str(from);
        }
    }
    match slot {
        Some(w) => {
            assign(&mut w.request_id, &ctx.request_id);
            assign(&mut w.service_name, &ctx.service);
            assign(&mut w.function_name, &ctx.function);
            assign(&mut w.qualifier, &ctx.qualifier);
            assign(&mut w.version_id, &ctx.version_id);
            w.deadline_ms = ctx.deadline_unix_ms;
            w.memory_limit_mb = memory_limit_mb.min(u32::MAX as u64) as u32;
            match (&mut w.task_id, &ctx.task_id) {
                (Some(to), Some(from)) => assign(to, from),
                (to, from) => to.clone_from(from),
            }
            w.attempt = ctx.attempt;
            w
        }
        None => slot.insert(wit_context(ctx, memory_limit_mb)),
    }
}

pub(super) fn new_instance_id() -> String {
    format!("inst-{}", &uuid::Uuid::new_v4().simple().to_string()[..20])
}

pub struct EventInstance {
    pub(super) id: String,
    store: Store<ComponentState>,
    handler: handler::Guest,
    capture: Capture,
    memory_limit_mb: u64,
    /// The context record passed to the last call, kept so the next call
    /// rewrites its strings in place: service, function, qualifier and
    /// version rarely change between calls of one instance, and building
    /// the record afresh was five string copies per invocation.
    wit_ctx: Option<WitContext>,
}

pub struct CommandInstance {
    pub(super) id: String,
    pub(super) engine: Engine,
    pub(super) pre: wasmtime::InstancePre<CommandState>,
    pub(super) settings: Arc<InstanceSettings>,
}

impl EventInstance {
    /// Instantiates the component and, when the function has an
    /// initializer, runs it with `init_ctx`.
    pub(super) async fn create(
        engine: &Engine,
        pre: &wasmtime::component::InstancePre<ComponentState>,
        indices: (&handler::GuestIndices, Option<&lifecycle::GuestIndices>),
        settings: &InstanceSettings,
        init_ctx: Option<&InvocationContext>,
    ) -> Result<EventInstance, InvokeError> {
        let capture = Capture::log_only(engine.config().log_limit);
        let state = ComponentState {
            wasi: sandbox::locked_wasi(&capture, &settings.env).build(),
            table: sandbox::resource_table(),
            bounds: Bounds::new(engine, settings.memory_limit_mb, settings.fuel_budget)?,
        };
        let mut store = sandbox::new_store(engine, state);
        // Instantiation runs guest code (start functions), so it gets the
        // same stop/deadline treatment as a call.
        let (stop, deadline) = match init_ctx {
            Some(c) => (c.stop.clone(), c.deadline),
            None => (StopHandle::new(), Instant::now() + std::time::Duration::from_secs(30)),
        };
        sandbox::arm(&mut store, &stop, deadline);
        let instance = match race(pre.instantiate_async(&mut store), &stop, deadline).await {
            CallEnd::Returned(Ok(i)) => i,
            CallEnd::Returned(Err(e)) => return Err(instantiate_error(e, store.data().bounds())),
            CallEnd::Stopped => return Err(InvokeError::Stopped),
            CallEnd::TimedOut => return Err(InvokeError::Initialization("instantiation timed out".into())),
        };
        let (handler, lifecycle) = indices;
        let guest = handler
            .load(&mut store, &instance)
            .map_err(|e| InvokeError::Internal(format!("loading handler export: {e:#}")))?;
        if settings.run_initializer
            && let (Some(lifecycle), Some(ctx)) = (lifecycle, init_ctx)
        {
            let hook = lifecycle
                .load(&mut store, &instance)
                .map_err(|e| InvokeError::Internal(format!("loading lifecycle export: {e:#}")))?;
            initialize(&mut store, &hook, &capture, ctx, settings.memory_limit_mb).await?;
        }
        Ok(EventInstance {
            id: new_instance_id(),
            store,
            handler: guest,
            capture,
            memory_limit_mb: settings.memory_limit_mb,
            wit_ctx: None,
        })
    }

    pub(super) fn memory_bytes(&self) -> usize {
        self.store.data().bounds().limiter().current_bytes()
    }

    pub(super) async fn invoke(&mut self, ctx: &InvocationContext, event: Bytes) -> Invocation {
        let started = Instant::now();
        self.store.data_mut().bounds_mut().limiter.reset_invocation();
        let _stale = self.capture.take();
        sandbox::arm(&mut self.store, &ctx.stop, ctx.deadline);
        let wit_ctx = reuse_wit_context(&mut self.wit_ctx, ctx, self.memory_limit_mb);

        let end = race(
            self.handler.call_handle(&mut self.store, wit_ctx, &event),
            &ctx.stop,
            ctx.deadline,
        )
        .await;
        let captured = self.capture.take();
        let bounds = self.store.data().bounds();
        let result = match end {
            CallEnd::Returned(Ok(Ok(out))) => Ok(Bytes::from(out)),
            CallEnd::Returned(Ok(Err(msg))) => Err(InvokeError::Handled(msg)),
            CallEnd::Returned(Err(e)) => Err(classify(&e, ctx, bounds, false, &captured.log)),
            CallEnd::Stopped => Err(InvokeError::Stopped),
            CallEnd::TimedOut => Err(InvokeError::Timeout(ctx.timeout)),
        };
        Invocation {
            result,
            log: captured.log,
            duration: started.elapsed(),
            peak_memory_bytes: bounds.limiter().peak_bytes() as u64,
            instance_id: self.id.clone(),
            fuel_consumed: sandbox::fuel_consumed(&self.store),
        }
    }
}

/// Runs a new instance's initializer; its failure (with what the guest
/// logged) fails the instance's creation.
async fn initialize(
    store: &mut Store<ComponentState>,
    hook: &lifecycle::Guest,
    capture: &Capture,
    ctx: &InvocationContext,
    memory_limit_mb: u64,
) -> Result<(), InvokeError> {
    let wit_ctx = wit_context(ctx, memory_limit_mb);
    let end = race(hook.call_initialize(&mut *store, &wit_ctx), &ctx.stop, ctx.deadline).await;
    let failure = match end {
        CallEnd::Returned(Ok(Ok(()))) => return Ok(()),
        CallEnd::Returned(Ok(Err(msg))) => msg,
        CallEnd::Returned(Err(e)) => classify(&e, ctx, store.data().bounds(), false, &capture.take().log).to_string(),
        CallEnd::Stopped => return Err(InvokeError::Stopped),
        CallEnd::TimedOut => "initializer timed out".into(),
    };
    let log = capture.take().log;
    let log = if log.is_empty() {
        String::new()
    } else {
        format!("; log: {}", String::from_utf8_lossy(&log))
    };
    Err(InvokeError::Initialization(format!("{failure}{log}")))
}

impl CommandInstance {
    pub(super) async fn invoke(&mut self, ctx: &InvocationContext, event: Bytes) -> Invocation {
        let started = Instant::now();
        let config = self.engine.config();
        let capture = Capture::with_result(config.log_limit, config.result_limit);
        let bounds = match Bounds::new(&self.engine, self.settings.memory_limit_mb, self.settings.fuel_budget) {
            Ok(bounds) => bounds,
            Err(e) => return Invocation::failed(e, self.id.clone()),
        };
        let mut wasi = sandbox::locked_wasi(&capture, &self.settings.env);
        wasi.stdin(MemoryInputPipe::new(event)).arg(&ctx.function);
        let state = CommandState {
            wasi: wasi.build_p1(),
            bounds,
        };
        let mut store = sandbox::new_store(&self.engine, state);
        sandbox::arm(&mut store, &ctx.stop, ctx.deadline);

        let pre = &self.pre;
        let run = async {
            let instance = pre.instantiate_async(&mut store).await?;
            let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
            start.call_async(&mut store, ()).await
        };
        let end = race(run, &ctx.stop, ctx.deadline).await;
        let captured = capture.take();
        let bounds = store.data().bounds();
        let exit_code = match &end {
            CallEnd::Returned(Ok(())) => Some(0),
            CallEnd::Returned(Err(e)) => e.downcast_ref::<I32Exit>().map(|c| c.0),
            _ => None,
        };
        let result = match (exit_code, end) {
            (Some(0), _) => Ok(captured.result.clone().unwrap_or_default()),
            (Some(code), _) => {
                let last = last_line(&captured.log);
                Err(InvokeError::Handled(if last.is_empty() {
                    format!("process exited with code {code}")
                } else {
                    format!("process exited with code {code}: {last}")
                }))
            }
            (None, CallEnd::Returned(Err(e))) => {
                Err(classify(&e, ctx, bounds, captured.result_overflowed, &captured.log))
            }
            (None, CallEnd::Stopped) => Err(InvokeError::Stopped),
            (None, CallEnd::TimedOut) => Err(InvokeError::Timeout(ctx.timeout)),
            (None, CallEnd::Returned(Ok(()))) => Ok(captured.result.clone().unwrap_or_default()),
        };
        let result = match result {
            Ok(_) if captured.result_overflowed => Err(InvokeError::OutputLimit),
            other => other,
        };
        Invocation {
            result,
            log: captured.log,
            duration: started.elapsed(),
            peak_memory_bytes: bounds.limiter().peak_bytes() as u64,
            instance_id: self.id.clone(),
            fuel_consumed: sandbox::fuel_consumed(&store),
        }
    }
}

fn last_line(log: &[u8]) -> String {
    let text = String::from_utf8_lossy(log);
    text.trim_end()
        .rsplit('\n')
        .next()
        .unwrap_or("")
        .chars()
        .take(512)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::engine::Target;

    fn context(request: &str, qualifier: &str, task: Option<&str>, attempt: u32) -> InvocationContext {
        let target = Target {
            service: "svc".into(),
            function: "fn".into(),
            qualifier: qualifier.into(),
            version_id: "3".into(),
        };
        let timeout = Duration::from_secs(5);
        match task {
            Some(id) => {
                InvocationContext::task_attempt(request.into(), target, timeout, id.into(), attempt, StopHandle::new())
            }
            None => InvocationContext::request(request.into(), target, timeout),
        }
    }

    #[test]
    fn a_reused_context_record_matches_a_fresh_one() {
        let mut slot = None;
        let calls = [
            context("req-1", "LATEST", None, 0),
            context("req-2-longer", "prod", Some("task-a"), 1),
            context("r3", "prod", Some("task-bb"), 2),
            context("r4", "LATEST", None, 0),
        ];
        for ctx in &calls {
            let reused = format!("{:?}", reuse_wit_context(&mut slot, ctx, 128));
            assert_eq!(reused, format!("{:?}", wit_context(ctx, 128)));
        }
    }
}
