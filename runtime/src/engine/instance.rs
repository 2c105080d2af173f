//! Instances: a store plus an instantiated guest, and the calls into it.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::artifacts::Compiled;
use super::capture::Capture;
use super::http::{HttpInstance, HttpState};
use super::interrupt::{RunningGuest, StopHandle, epoch_callback};
use super::invocation::{Invocation, InvocationContext, InvokeError};
use super::limits::MemoryLimiter;
use super::{Engine, EngineError, GuestKind, Prepared};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../host-api/wit",
        world: "event-function",
        exports: { default: async },
    });
}

use bindings::exports::wasmfc::function::{handler, lifecycle};
use bindings::wasmfc::function::types::Context as WitContext;

/// Store data of a command module.
pub struct CommandState {
    pub wasi: WasiP1Ctx,
    limiter: MemoryLimiter,
}

/// Store data of a component.
pub struct ComponentState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// How a function's instances are set up; fixed per function version.
#[derive(Debug, Clone)]
pub struct InstanceSettings {
    /// `environmentVariables`, the guest's whole environment.
    pub env: Vec<(String, String)>,
    /// `memorySize`.
    pub memory_limit_mb: u64,
    /// Run the guest's initializer when an instance is created.
    pub run_initializer: bool,
    /// Where an HTTP function may send requests (`allowedOutboundHosts`);
    /// empty denies all outgoing HTTP.
    pub allowed_outbound_hosts: Arc<super::outbound::AllowList>,
}

pub(super) enum PreparedTarget {
    Command {
        pre: wasmtime::InstancePre<CommandState>,
    },
    Event {
        pre: wasmtime::component::InstancePre<ComponentState>,
        handler: handler::GuestIndices,
        lifecycle: Option<lifecycle::GuestIndices>,
    },
    Http {
        pre: wasmtime_wasi_http::p2::bindings::ProxyPre<HttpState>,
    },
    Orchestrator {
        pre: wasmtime::component::InstancePre<super::orchestrator::OrchestratorState>,
        indices: super::orchestrator::bindings::exports::wasmfc::function::orchestrator::GuestIndices,
    },
}

impl PreparedTarget {
    pub(super) fn has_initializer(&self) -> bool {
        matches!(self, PreparedTarget::Event { lifecycle: Some(_), .. })
    }
}

/// Links compiled code against what wasmfc provides and decides its kind.
pub(super) fn link(
    module_linker: &wasmtime::Linker<CommandState>,
    component_linker: &wasmtime::component::Linker<ComponentState>,
    http_linker: &wasmtime::component::Linker<HttpState>,
    orchestrator_linker: &wasmtime::component::Linker<super::orchestrator::OrchestratorState>,
    compiled: Compiled,
) -> Result<(GuestKind, PreparedTarget), EngineError> {
    match compiled {
        Compiled::Module(module) => {
            if module.get_export("_start").is_none() {
                return Err(EngineError::InvalidCode(
                    "a core module must be a WASI preview-1 command exporting `_start` \
                     (build with --target wasm32-wasip1), or build a component"
                        .into(),
                ));
            }
            let pre = module_linker
                .instantiate_pre(&module)
                .map_err(|e| EngineError::InvalidCode(format!("cannot link module: {e:#}")))?;
            Ok((GuestKind::Command, PreparedTarget::Command { pre }))
        }
        Compiled::Component(component) if exports_http_handler(&component) => {
            let pre = http_linker
                .instantiate_pre(&component)
                .map_err(|e| EngineError::InvalidCode(format!("cannot link wasi:http component: {e:#}")))?;
            let pre = wasmtime_wasi_http::p2::bindings::ProxyPre::new(pre).map_err(|e| {
                EngineError::InvalidCode(format!("the component is not a wasi:http/proxy component: {e:#}"))
            })?;
            Ok((GuestKind::HttpComponent, PreparedTarget::Http { pre }))
        }
        Compiled::Component(component) if super::orchestrator::exports_orchestrator(&component) => Ok((
            GuestKind::Orchestrator,
            super::orchestrator::prepare(orchestrator_linker, &component)?,
        )),
        Compiled::Component(component) => {
            let pre = component_linker
                .instantiate_pre(&component)
                .map_err(|e| EngineError::InvalidCode(format!("cannot link component: {e:#}")))?;
            match handler::GuestIndices::new(&pre) {
                Ok(handler) => {
                    let lifecycle = lifecycle::GuestIndices::new(&pre).ok();
                    Ok((
                        GuestKind::EventComponent,
                        PreparedTarget::Event {
                            pre,
                            handler,
                            lifecycle,
                        },
                    ))
                }
                Err(e) => Err(EngineError::InvalidCode(format!(
                    "the component exports neither `wasmfc:function/handler@0.1.0` \
                     (an event function, see host-api/wit/function.wit) nor \
                     `wasi:http/incoming-handler@0.2` (an HTTP function): {e:#}"
                ))),
            }
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

fn new_instance_id() -> String {
    format!("inst-{}", &uuid::Uuid::new_v4().simple().to_string()[..20])
}

/// A live instance.
pub enum GuestInstance {
    Event(EventInstance),
    /// Commands are instantiated per invocation; this holds the recipe.
    Command(CommandInstance),
    /// HTTP functions are instantiated per request; this holds the recipe.
    Http(HttpInstance),
}

pub struct EventInstance {
    id: String,
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
    id: String,
    engine: Engine,
    prepared: Arc<Prepared>,
    settings: Arc<InstanceSettings>,
}

/// How a guest call ended, before classification.
pub(crate) enum CallEnd<T> {
    Returned(wasmtime::Result<T>),
    Stopped,
    TimedOut,
}

/// Runs `call` until it returns, the stop handle fires, or the deadline
/// passes; the latter two drop (cancel) the call.
pub(crate) async fn race<T>(
    call: impl Future<Output = wasmtime::Result<T>>,
    stop: &StopHandle,
    deadline: Instant,
) -> CallEnd<T> {
    let _running = RunningGuest::enter();
    tokio::select! {
        biased;
        r = call => CallEnd::Returned(r),
        _ = stop.stopped() => CallEnd::Stopped,
        _ = tokio::time::sleep_until(deadline.into()) => CallEnd::TimedOut,
    }
}

/// Classifies a failed call. Order matters: a stop or deadline interrupt
/// surfaces as a trap, and so does an allocation failure after a refused
/// memory growth.
pub(crate) fn classify(
    err: &wasmtime::Error,
    ctx: &InvocationContext,
    limiter: &MemoryLimiter,
    output_overflowed: bool,
    log: &[u8],
) -> InvokeError {
    let (stop, deadline) = (&ctx.stop, ctx.deadline);
    if stop.is_stopped() {
        return InvokeError::Stopped;
    }
    if matches!(err.downcast_ref::<Trap>(), Some(Trap::Interrupt)) && Instant::now() >= deadline {
        return InvokeError::Timeout(ctx.timeout);
    }
    if output_overflowed {
        return InvokeError::OutputLimit;
    }
    if limiter.refused() {
        return InvokeError::OutOfMemory((limiter.limit_bytes() >> 20) as u64);
    }
    InvokeError::Trap(trap_message(err, log))
}

/// A trap's message: the trap itself, what the guest said as it panicked
/// (Rust prints `panicked at ...` to stderr before aborting), then the wasm
/// backtrace.
fn trap_message(err: &wasmtime::Error, log: &[u8]) -> String {
    let mut message = match err.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{:#}", err.root_cause()),
    };
    // Rust writes `thread '..' panicked at file:line:col:` and the panic
    // message on the next line.
    let text = String::from_utf8_lossy(log);
    let lines: Vec<&str> = text.lines().collect();
    if let Some(at) = lines.iter().rposition(|l| l.contains("panicked at")) {
        let panic = lines[at..]
            .iter()
            .take(2)
            .map(|l| l.trim())
            .collect::<Vec<_>>()
            .join(" ");
        message.push_str(&format!(" ({panic})"));
    }
    if let Some(bt) = err.downcast_ref::<wasmtime::WasmBacktrace>() {
        message.push_str(&format!("\n{bt}"));
    }
    message.truncate(4096);
    message
}

impl GuestInstance {
    pub(super) async fn create(
        engine: &Engine,
        prepared: Arc<Prepared>,
        settings: Arc<InstanceSettings>,
        init_ctx: Option<&InvocationContext>,
    ) -> Result<GuestInstance, InvokeError> {
        match &prepared.target {
            PreparedTarget::Command { .. } => Ok(GuestInstance::Command(CommandInstance {
                id: new_instance_id(),
                engine: engine.clone(),
                prepared: prepared.clone(),
                settings,
            })),
            PreparedTarget::Orchestrator { .. } => Err(InvokeError::Handled(
                "this function is an orchestrator: start it through the orchestration API \
                 (POST /runtime/webhooks/durabletask/orchestrators/{name})"
                    .into(),
            )),
            PreparedTarget::Http { pre } => Ok(GuestInstance::Http(HttpInstance {
                id: new_instance_id(),
                engine: engine.clone(),
                pre: pre.clone(),
                settings,
                prepared: prepared.clone(),
            })),
            PreparedTarget::Event {
                pre,
                handler,
                lifecycle,
            } => {
                let capture = Capture::log_only(engine.config().log_limit);
                let mut wasi = WasiCtxBuilder::new();
                wasi.stdout(capture.stdout())
                    .stderr(capture.stderr())
                    .envs(&settings.env)
                    .allow_tcp(false)
                    .allow_udp(false)
                    .allow_ip_name_lookup(false);
                let state = ComponentState {
                    wasi: wasi.build(),
                    table: ResourceTable::new(),
                    limiter: MemoryLimiter::new((settings.memory_limit_mb as usize) << 20),
                };
                let mut store = Store::new(engine.wasmtime(), state);
                store.limiter(|s| &mut s.limiter);

                // Instantiation runs guest code (start functions), so it gets
                // the same stop/deadline treatment as a call.
                let (stop, deadline) = match init_ctx {
                    Some(c) => (c.stop.clone(), c.deadline),
                    None => (StopHandle::new(), Instant::now() + std::time::Duration::from_secs(30)),
                };
                store.set_epoch_deadline(1);
                store.epoch_deadline_callback(epoch_callback(stop.clone(), deadline));
                let instance = match race(pre.instantiate_async(&mut store), &stop, deadline).await {
                    CallEnd::Returned(Ok(i)) => i,
                    CallEnd::Returned(Err(e)) => return Err(instantiate_error(e, &store.data().limiter)),
                    CallEnd::Stopped => return Err(InvokeError::Stopped),
                    CallEnd::TimedOut => {
                        return Err(InvokeError::Initialization("instantiation timed out".into()));
                    }
                };
                let guest = handler
                    .load(&mut store, &instance)
                    .map_err(|e| InvokeError::Internal(format!("loading handler export: {e:#}")))?;

                if settings.run_initializer
                    && let (Some(lifecycle), Some(ctx)) = (lifecycle, init_ctx)
                {
                    let hook = lifecycle
                        .load(&mut store, &instance)
                        .map_err(|e| InvokeError::Internal(format!("loading lifecycle export: {e:#}")))?;
                    let wit_ctx = wit_context(ctx, settings.memory_limit_mb);
                    let end = race(hook.call_initialize(&mut store, &wit_ctx), &ctx.stop, ctx.deadline).await;
                    let failure = match end {
                        CallEnd::Returned(Ok(Ok(()))) => None,
                        CallEnd::Returned(Ok(Err(msg))) => Some(msg),
                        CallEnd::Returned(Err(e)) => {
                            Some(classify(&e, ctx, &store.data().limiter, false, &capture.take().log).to_string())
                        }
                        CallEnd::Stopped => return Err(InvokeError::Stopped),
                        CallEnd::TimedOut => Some("initializer timed out".into()),
                    };
                    if let Some(msg) = failure {
                        let log = capture.take().log;
                        return Err(InvokeError::Initialization(format!(
                            "{msg}{}",
                            if log.is_empty() {
                                String::new()
                            } else {
                                format!("; log: {}", String::from_utf8_lossy(&log))
                            }
                        )));
                    }
                }
                Ok(GuestInstance::Event(EventInstance {
                    id: new_instance_id(),
                    store,
                    handler: guest,
                    capture,
                    memory_limit_mb: settings.memory_limit_mb,
                    wit_ctx: None,
                }))
            }
        }
    }

    pub fn id(&self) -> &str {
        match self {
            GuestInstance::Event(i) => &i.id,
            GuestInstance::Command(i) => &i.id,
            GuestInstance::Http(i) => i.id(),
        }
    }

    /// Bytes of linear memory the instance holds now.
    pub fn memory_bytes(&self) -> usize {
        match self {
            GuestInstance::Event(i) => i.store.data().limiter.current_bytes(),
            GuestInstance::Command(_) | GuestInstance::Http(_) => 0,
        }
    }

    /// Runs one invocation. The caller decides from the result whether the
    /// instance may serve again ([`InvokeError::instance_survives`]).
    pub async fn invoke(&mut self, ctx: &InvocationContext, event: Bytes) -> Invocation {
        match self {
            GuestInstance::Event(i) => i.invoke(ctx, event).await,
            // Boxed: a command run builds a WASI context and instantiates, a
            // future several KB large that would otherwise size every event
            // invocation's future too.
            GuestInstance::Command(i) => Box::pin(i.invoke(ctx, event)).await,
            GuestInstance::Http(i) => Invocation {
                result: Err(InvokeError::Handled(
                    "this is an HTTP function (a wasi:http component): invoke it through its HTTP trigger".into(),
                )),
                log: Bytes::new(),
                duration: std::time::Duration::ZERO,
                peak_memory_bytes: 0,
                instance_id: i.id().to_string(),
            },
        }
    }
}

/// True for a component exporting `wasi:http/incoming-handler` (any 0.2.x):
/// an HTTP function.
fn exports_http_handler(component: &wasmtime::component::Component) -> bool {
    component
        .component_type()
        .exports(component.engine())
        .any(|(name, _)| name.starts_with("wasi:http/incoming-handler@0.2"))
}

fn instantiate_error(e: wasmtime::Error, limiter: &MemoryLimiter) -> InvokeError {
    let msg = format!("{e:#}");
    if limiter.refused() {
        InvokeError::OutOfMemory((limiter.limit_bytes() >> 20) as u64)
    } else if msg.contains("maximum concurrent") || msg.contains("pooling allocator") {
        InvokeError::Capacity(format!("no instance slot available: {msg}"))
    } else {
        InvokeError::Trap(format!("instantiation failed: {msg}"))
    }
}

impl EventInstance {
    async fn invoke(&mut self, ctx: &InvocationContext, event: Bytes) -> Invocation {
        let started = Instant::now();
        self.store.data_mut().limiter.reset_invocation();
        let _stale = self.capture.take();
        self.store.set_epoch_deadline(1);
        self.store
            .epoch_deadline_callback(epoch_callback(ctx.stop.clone(), ctx.deadline));
        let wit_ctx = reuse_wit_context(&mut self.wit_ctx, ctx, self.memory_limit_mb);

        let end = race(
            self.handler.call_handle(&mut self.store, wit_ctx, &event),
            &ctx.stop,
            ctx.deadline,
        )
        .await;
        let captured = self.capture.take();
        let limiter = &self.store.data().limiter;
        let result = match end {
            CallEnd::Returned(Ok(Ok(out))) => Ok(Bytes::from(out)),
            CallEnd::Returned(Ok(Err(msg))) => Err(InvokeError::Handled(msg)),
            CallEnd::Returned(Err(e)) => Err(classify(&e, ctx, limiter, false, &captured.log)),
            CallEnd::Stopped => Err(InvokeError::Stopped),
            CallEnd::TimedOut => Err(InvokeError::Timeout(ctx.timeout)),
        };
        Invocation {
            result,
            log: captured.log,
            duration: started.elapsed(),
            peak_memory_bytes: limiter.peak_bytes() as u64,
            instance_id: self.id.clone(),
        }
    }
}

impl CommandInstance {
    async fn invoke(&mut self, ctx: &InvocationContext, event: Bytes) -> Invocation {
        let started = Instant::now();
        let PreparedTarget::Command { pre } = &self.prepared.target else {
            return Invocation {
                result: Err(InvokeError::Internal("command instance holds non-command code".into())),
                log: Bytes::new(),
                duration: started.elapsed(),
                peak_memory_bytes: 0,
                instance_id: self.id.clone(),
            };
        };
        let config = self.engine.config();
        let capture = Capture::with_result(config.log_limit, config.result_limit);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdin(MemoryInputPipe::new(event))
            .stdout(capture.stdout())
            .stderr(capture.stderr())
            .envs(&self.settings.env)
            .arg(&ctx.function)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let state = CommandState {
            wasi: wasi.build_p1(),
            limiter: MemoryLimiter::new((self.settings.memory_limit_mb as usize) << 20),
        };
        let mut store = Store::new(self.engine.wasmtime(), state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(epoch_callback(ctx.stop.clone(), ctx.deadline));

        let run = async {
            let instance = pre.instantiate_async(&mut store).await?;
            let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
            start.call_async(&mut store, ()).await
        };
        let end = race(run, &ctx.stop, ctx.deadline).await;
        let captured = capture.take();
        let limiter = &store.data().limiter;
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
                Err(classify(&e, ctx, limiter, captured.result_overflowed, &captured.log))
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
            peak_memory_bytes: limiter.peak_bytes() as u64,
            instance_id: self.id.clone(),
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

    fn context(request: &str, qualifier: &str, task: Option<&str>, attempt: u32) -> InvocationContext {
        InvocationContext::new(
            request.into(),
            "svc".into(),
            "fn".into(),
            qualifier.into(),
            "3".into(),
            Duration::from_secs(5),
            task.map(str::to_string),
            attempt,
            StopHandle::new(),
        )
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
