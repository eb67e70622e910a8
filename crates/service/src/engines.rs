//! The engines this build and configuration offer.

use std::sync::Arc;

use wagate_core::EngineKind;
use wagate_engine::{Capabilities, Engine, EngineError};

#[derive(Clone, Default)]
pub struct Engines {
    engines: Vec<Arc<dyn Engine>>,
    preferred: Option<EngineKind>,
    #[cfg(feature = "sandbox")]
    sandbox: Option<Arc<wagate_engine::sandbox::SandboxNetwork>>,
}

impl Engines {
    pub fn new() -> Self {
        Self::default()
    }

    #[cfg(feature = "sandbox")]
    pub fn with_sandbox(mut self, engine: wagate_engine::sandbox::SandboxEngine) -> Self {
        self.sandbox = Some(engine.network());
        self.engines.push(Arc::new(engine));
        self
    }

    #[cfg(feature = "web")]
    pub fn with_web(mut self, engine: wagate_engine::web::WebEngine) -> Self {
        self.engines.push(Arc::new(engine));
        self
    }

    /// Any other engine (one built outside this crate, e.g. in tests).
    pub fn with_engine(mut self, engine: Arc<dyn Engine>) -> Self {
        self.engines.push(engine);
        self
    }

    /// The engine of sessions created without one: the configured one, else `web`.
    pub fn with_default(mut self, preferred: Option<EngineKind>) -> Self {
        self.preferred = preferred;
        self
    }

    pub fn default_kind(&self) -> EngineKind {
        let available = self.kinds();
        match self.preferred {
            Some(kind) => kind,
            None if available.contains(&EngineKind::Web) || available.is_empty() => EngineKind::Web,
            None => available[0],
        }
    }

    pub fn get(&self, kind: EngineKind) -> Result<Arc<dyn Engine>, EngineError> {
        self.engines.iter().find(|e| e.kind() == kind).cloned().ok_or(EngineError::NotAvailable(kind))
    }

    /// What sessions of `kind` can do; nothing when the engine is not available.
    pub fn capabilities(&self, kind: EngineKind) -> Capabilities {
        self.get(kind).map(|engine| engine.capabilities()).unwrap_or(Capabilities::NONE)
    }

    pub fn kinds(&self) -> Vec<EngineKind> {
        self.engines.iter().map(|e| e.kind()).collect()
    }

    /// The simulated network, when the sandbox engine is enabled.
    #[cfg(feature = "sandbox")]
    pub fn sandbox(&self) -> Option<Arc<wagate_engine::sandbox::SandboxNetwork>> {
        self.sandbox.clone()
    }
}
