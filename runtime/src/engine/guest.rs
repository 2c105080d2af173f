//! One executor per guest kind: linking decides a piece of code's kind
//! once ([`link`]), and an instance is created for that kind
//! ([`GuestInstance::create`]); the pool checks the kind when it resolves
//! a function, so an invocation never finds out late that it reached the
//! wrong kind.

use std::sync::Arc;

use bytes::Bytes;

use super::artifacts::Compiled;
use super::http::{HttpInstance, HttpState};
use super::instance::{
    CommandInstance, CommandState, ComponentState, EventInstance, handler, lifecycle, new_instance_id,
};
use super::invocation::{Invocation, InvocationContext, InvokeError};
use super::orchestrator::{self, OrchestratorPre, OrchestratorState};
use super::sandbox::InstanceSettings;
use super::{Engine, EngineError, GuestKind, Prepared};

/// Linked code of one guest kind, ready to instantiate.
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
    Orchestrator(OrchestratorPre),
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
    orchestrator_linker: &wasmtime::component::Linker<OrchestratorState>,
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
        Compiled::Component(component) if orchestrator::exports_orchestrator(&component) => Ok((
            GuestKind::Orchestrator,
            PreparedTarget::Orchestrator(orchestrator::prepare(orchestrator_linker, &component)?),
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

/// A live instance.
pub enum GuestInstance {
    Event(EventInstance),
    /// Commands are instantiated per invocation; this holds the recipe.
    Command(CommandInstance),
    /// HTTP functions are instantiated per request; this holds the recipe.
    Http(HttpInstance),
}

impl GuestInstance {
    /// Creates an instance of `prepared`, dispatching on its kind once.
    pub(super) async fn create(
        engine: &Engine,
        prepared: Arc<Prepared>,
        settings: Arc<InstanceSettings>,
        init_ctx: Option<&InvocationContext>,
    ) -> Result<GuestInstance, InvokeError> {
        match &prepared.target {
            PreparedTarget::Command { pre } => Ok(GuestInstance::Command(CommandInstance {
                id: new_instance_id(),
                engine: engine.clone(),
                pre: pre.clone(),
                settings,
            })),
            PreparedTarget::Orchestrator(_) => Err(InvokeError::orchestrator_function()),
            PreparedTarget::Http { pre } => Ok(GuestInstance::Http(HttpInstance {
                id: new_instance_id(),
                engine: engine.clone(),
                pre: pre.clone(),
                settings,
                _prepared: prepared.clone(),
                live: None,
            })),
            PreparedTarget::Event {
                pre,
                handler,
                lifecycle,
            } => EventInstance::create(engine, pre, (handler, lifecycle.as_ref()), &settings, init_ctx)
                .await
                .map(GuestInstance::Event),
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
            GuestInstance::Event(i) => i.memory_bytes(),
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
            GuestInstance::Http(i) => Invocation::failed(InvokeError::http_function(), i.id().to_string()),
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
