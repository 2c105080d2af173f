//! `wasmfc.toml`: what `wasmfc deploy` makes a server hold.
//!
//! Parsed strictly: an unknown key or a value out of range is an error that
//! names its line (TOML's own errors carry the position; range checks run
//! inside deserialization so they do too), and a code path that does not
//! exist (after the build) names the line of its `code =`. Nothing reaches
//! the server before the whole manifest is valid.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

/// The manifest.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Commands run (in the manifest's directory, by `sh -c`) before
    /// anything is uploaded, e.g. the guests' cargo build.
    #[serde(default)]
    pub build: Vec<String>,
    #[serde(default, rename = "service")]
    pub services: Vec<Service>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub name: Name,
    #[serde(default)]
    pub description: String,
    #[serde(default, rename = "function")]
    pub functions: Vec<Function>,
    #[serde(default, rename = "alias")]
    pub aliases: Vec<Alias>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Function {
    pub name: Name,
    /// The `.wasm` (or zip) to upload, relative to the manifest.
    pub code: Spanned<PathBuf>,
    #[serde(default)]
    pub description: String,
    /// Seconds, 1 to 86400 (FC's `timeout`).
    #[serde(default = "default_timeout")]
    pub timeout: Bounded<1, 86_400>,
    /// MB, 1 to 4096 (FC's `memorySize`).
    #[serde(default = "default_memory")]
    pub memory: Bounded<1, 4096>,
    /// Concurrent requests per instance, 1 to 200.
    #[serde(default = "default_concurrency")]
    pub instance_concurrency: Bounded<1, 200>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The export run once per new instance (a component's lifecycle
    /// `init`); empty for none.
    #[serde(default)]
    pub initializer: String,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    /// The async policy (PutFunctionAsyncInvokeConfig) for LATEST.
    #[serde(default, rename = "async")]
    pub async_policy: Option<AsyncPolicy>,
    #[serde(default, rename = "trigger")]
    pub triggers: Vec<Trigger>,
    #[serde(default)]
    pub provision: Vec<Provision>,
}

fn default_timeout() -> Bounded<1, 86_400> {
    Bounded(3)
}
fn default_memory() -> Bounded<1, 4096> {
    Bounded(128)
}
fn default_concurrency() -> Bounded<1, 200> {
    Bounded(1)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsyncPolicy {
    /// Task mode (`statefulInvocation`): async calls are tasks.
    #[serde(default)]
    pub task_mode: bool,
    #[serde(default = "default_retries")]
    pub max_retries: Bounded<0, 8>,
    /// Seconds an event may wait before it is dropped.
    #[serde(default)]
    pub max_event_age: Option<Bounded<1, 2_592_000>>,
    /// Destination ARNs.
    #[serde(default)]
    pub on_success: Option<String>,
    #[serde(default)]
    pub on_failure: Option<String>,
}

fn default_retries() -> Bounded<0, 8> {
    Bounded(3)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    pub name: Name,
    #[serde(default = "default_methods")]
    pub methods: Vec<String>,
    /// `anonymous` or `function` (requests must be signed).
    #[serde(default = "default_auth")]
    pub auth: AuthType,
    #[serde(default = "latest")]
    pub qualifier: String,
}

fn default_methods() -> Vec<String> {
    vec!["GET".into(), "POST".into()]
}
fn default_auth() -> AuthType {
    AuthType::Anonymous
}
fn latest() -> String {
    "LATEST".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthType {
    Anonymous,
    Function,
}

impl AuthType {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::Anonymous => "anonymous",
            AuthType::Function => "function",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provision {
    /// A version or an alias of the service.
    pub qualifier: String,
    pub target: Bounded<0, 100_000>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alias {
    pub name: Name,
    /// `"latest"`: the newest published version, publishing one first when
    /// the service's functions changed since; or a version number.
    pub version: AliasVersion,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AliasVersion {
    Latest,
    Number(u64),
}

impl<'de> Deserialize<'de> for AliasVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(i64),
        }
        match Raw::deserialize(d)? {
            Raw::Text(t) if t == "latest" => Ok(AliasVersion::Latest),
            Raw::Number(n) if n >= 1 => Ok(AliasVersion::Number(n as u64)),
            _ => Err(serde::de::Error::custom(
                "version must be \"latest\" or a published version number (1, 2, ...)",
            )),
        }
    }
}

/// An integer within `MIN..=MAX`, checked while parsing (so the error
/// carries the line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounded<const MIN: i64, const MAX: i64>(pub i64);

impl<'de, const MIN: i64, const MAX: i64> Deserialize<'de> for Bounded<MIN, MAX> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        if !(MIN..=MAX).contains(&v) {
            return Err(serde::de::Error::custom(format!(
                "must be from {MIN} to {MAX}, got {v}"
            )));
        }
        Ok(Bounded(v))
    }
}

/// A service, function, trigger or alias name: FC's rule (a letter or `_`
/// first, then letters, digits, `_` and `-`, at most 128).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(pub String);

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let valid = s.len() <= 128
            && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(serde::de::Error::custom(format!(
                "'{s}' is not a valid name: start with a letter or '_', then letters, digits, '_' or '-'"
            )));
        }
        Ok(Name(s))
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A manifest error, with the file and line it is about.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl Manifest {
    /// Parses `text` (read from `path`, named in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, ManifestError> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| ManifestError::Invalid {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        manifest.check_names(path)?;
        Ok(manifest)
    }

    pub fn load(path: &Path) -> Result<(Manifest, String), ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Ok((Manifest::parse(&text, path)?, text))
    }

    /// A name declared twice is an error, not a silent override.
    fn check_names(&self, path: &Path) -> Result<(), ManifestError> {
        let dup = |what: &str, name: &Name| ManifestError::Invalid {
            path: path.display().to_string(),
            message: format!("{what} '{name}' is declared twice"),
        };
        let mut services = std::collections::BTreeSet::new();
        for s in &self.services {
            if !services.insert(&s.name.0) {
                return Err(dup("service", &s.name));
            }
            let mut functions = std::collections::BTreeSet::new();
            for f in &s.functions {
                if !functions.insert(&f.name.0) {
                    return Err(dup("function", &f.name));
                }
            }
            let mut aliases = std::collections::BTreeSet::new();
            for a in &s.aliases {
                if !aliases.insert(&a.name.0) {
                    return Err(dup("alias", &a.name));
                }
            }
        }
        Ok(())
    }

    /// Every `code` path must exist (checked after the build): the error
    /// names the line of the `code =` that points nowhere.
    pub fn check_code_paths(&self, path: &Path, text: &str) -> Result<(), ManifestError> {
        let base = path.parent().unwrap_or(Path::new("."));
        for s in &self.services {
            for f in &s.functions {
                let code = base.join(f.code.get_ref());
                if !code.is_file() {
                    let line = text[..f.code.span().start.min(text.len())].lines().count().max(1);
                    return Err(ManifestError::Invalid {
                        path: path.display().to_string(),
                        message: format!(
                            "line {line}: code file {} of function '{}/{}' does not exist",
                            code.display(),
                            s.name,
                            f.name
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, String> {
        Manifest::parse(text, Path::new("wasmfc.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_full_manifest_parses_with_defaults() {
        let m = parse(
            r#"
            [[service]]
            name = "demo"
            [[service.function]]
            name = "hello"
            code = "hello.wasm"
            env = { GREETING = "Hej" }
            [service.function.async]
            task_mode = true
            [[service.function.trigger]]
            name = "web"
            [[service.alias]]
            name = "live"
            version = "latest"
            "#,
        )
        .unwrap();
        let f = &m.services[0].functions[0];
        assert_eq!((f.timeout.0, f.memory.0), (3, 128));
        assert!(f.async_policy.as_ref().unwrap().task_mode);
        assert_eq!(f.triggers[0].methods, ["GET", "POST"]);
        assert_eq!(m.services[0].aliases[0].version, AliasVersion::Latest);
    }

    #[test]
    fn errors_name_their_line() {
        let unknown =
            parse("[[service]]\nname = \"s\"\n[[service.function]]\nname = \"f\"\ncode = \"x\"\ntmeout = 3\n");
        let e = unknown.unwrap_err();
        assert!(e.contains("line 6") && e.contains("tmeout"), "{e}");
        let bad = parse("[[service]]\nname = \"s\"\n[[service.function]]\nname = \"f\"\ncode = \"x\"\ntimeout = 0\n");
        let e = bad.unwrap_err();
        assert!(e.contains("line 6") && e.contains("from 1 to 86400"), "{e}");
        let name = parse("[[service]]\nname = \"9lives\"\n").unwrap_err();
        assert!(name.contains("line 2"), "{name}");
        let twice = parse("[[service]]\nname = \"s\"\n[[service]]\nname = \"s\"\n").unwrap_err();
        assert!(twice.contains("declared twice"), "{twice}");
    }

    #[test]
    fn a_missing_code_file_names_the_line_of_its_code_key() {
        let text = "[[service]]\nname = \"s\"\n[[service.function]]\nname = \"f\"\ncode = \"no/such.wasm\"\n";
        let m = parse(text).unwrap();
        let e = m
            .check_code_paths(Path::new("/tmp/wasmfc.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 5") && e.contains("no/such.wasm"), "{e}");
    }
}
