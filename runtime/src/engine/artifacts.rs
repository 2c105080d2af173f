//! The on-disk cache of compiled artifacts.
//!
//! Files are named `{wasm sha256}-{engine hash}.{module|component}`: the
//! engine hash is wasmtime's precompile-compatibility hash, so changing
//! engine settings or upgrading wasmtime never loads an incompatible
//! artifact. Files are written to a temporary name and renamed, so a crash
//! never leaves half an artifact under a real name.
//!
//! Safety: artifacts are loaded with `deserialize_file`, which trusts the
//! file. Only this module writes into the cache directory, which lives in the
//! server's data dir; the directory must not be writable by anyone else.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;

use wasmtime::Module;
use wasmtime::component::Component;

use super::EngineError;

/// Compiled code of either kind.
pub enum Compiled {
    Module(Module),
    Component(Component),
}

pub enum CacheOutcome {
    Compiled,
    Loaded,
}

pub struct ArtifactCache {
    engine: wasmtime::Engine,
    dir: PathBuf,
    engine_hash: String,
}

impl ArtifactCache {
    pub fn new(engine: &wasmtime::Engine, dir: PathBuf) -> Self {
        let mut h = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        ArtifactCache {
            engine: engine.clone(),
            dir,
            engine_hash: format!("{:016x}", h.finish()),
        }
    }

    fn path(&self, sha: &str, ext: &str) -> PathBuf {
        self.dir.join(format!("{sha}-{}.{ext}", self.engine_hash))
    }

    pub fn load_or_compile<F>(&self, sha: &str, load: F) -> Result<(Compiled, CacheOutcome), EngineError>
    where
        F: FnOnce() -> std::io::Result<Vec<u8>>,
    {
        if let Some(c) = self.load(sha) {
            return Ok((c, CacheOutcome::Loaded));
        }
        let wasm = load()?;
        let compiled = self.compile(&wasm)?;
        if let Err(e) = self.store(sha, &compiled) {
            // A cache we cannot write costs a recompile later, nothing more.
            tracing::warn!(error = %e, "could not write compiled artifact to the cache");
        }
        Ok((compiled, CacheOutcome::Compiled))
    }

    /// The cached artifact of `sha`, if there is a usable one.
    pub fn load(&self, sha: &str) -> Option<Compiled> {
        let module = self.path(sha, "module");
        if module.exists() {
            // SAFETY: see the module docs: only we write this directory.
            match unsafe { Module::deserialize_file(&self.engine, &module) } {
                Ok(m) => return Some(Compiled::Module(m)),
                Err(e) => tracing::warn!(path = %module.display(), error = %e, "discarding unusable artifact"),
            }
        }
        let component = self.path(sha, "component");
        if component.exists() {
            // SAFETY: as above.
            match unsafe { Component::deserialize_file(&self.engine, &component) } {
                Ok(c) => return Some(Compiled::Component(c)),
                Err(e) => tracing::warn!(path = %component.display(), error = %e, "discarding unusable artifact"),
            }
        }
        None
    }

    fn compile(&self, wasm: &[u8]) -> Result<Compiled, EngineError> {
        if !wasm.starts_with(b"\0asm") {
            return Err(EngineError::InvalidCode(
                "not a WebAssembly binary (missing the \\0asm magic)".into(),
            ));
        }
        if is_component(wasm) {
            Component::new(&self.engine, wasm)
                .map(Compiled::Component)
                .map_err(|e| EngineError::InvalidCode(format!("invalid component: {e:#}")))
        } else {
            Module::new(&self.engine, wasm)
                .map(Compiled::Module)
                .map_err(|e| EngineError::InvalidCode(format!("invalid module: {e:#}")))
        }
    }

    fn store(&self, sha: &str, compiled: &Compiled) -> Result<(), EngineError> {
        let (bytes, ext) = match compiled {
            Compiled::Module(m) => (m.serialize(), "module"),
            Compiled::Component(c) => (c.serialize(), "component"),
        };
        let bytes = bytes.map_err(|e| EngineError::Config(format!("serialize: {e:#}")))?;
        crate::util::write_atomically(&self.path(sha, ext), &bytes)?;
        Ok(())
    }
}

/// A component's preamble has layer 1 (bytes 6-7); a core module's has 0.
fn is_component(wasm: &[u8]) -> bool {
    wasm.len() >= 8 && wasm[6..8] == [1, 0]
}
