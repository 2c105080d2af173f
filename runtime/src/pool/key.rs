//! The key of a function version's instances, and looking it up without
//! building one.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

use crate::registry::ResolvedFunction;

/// Identifies one function version's instances. The function's id and
/// modification time are part of it, so an update never serves old
/// settings from a warm instance.
#[derive(Debug, Clone)]
pub struct PoolKey {
    pub service: String,
    pub function: String,
    pub version: Option<u64>,
    pub(super) function_id: String,
    pub(super) last_modified: String,
}

impl PoolKey {
    pub fn of(resolved: &ResolvedFunction) -> PoolKey {
        let (service, function, version, function_id, last_modified) = resolved.fields();
        PoolKey {
            service: service.to_string(),
            function: function.to_string(),
            version,
            function_id: function_id.to_string(),
            last_modified: last_modified.to_string(),
        }
    }
}

/// The fields of a pool key, owned ([`PoolKey`]) or borrowed from a
/// [`ResolvedFunction`]. The function map is looked up on every invocation;
/// looking it up through borrowed fields spares building an owned key (four
/// string copies) each time.
pub(super) trait KeyFields {
    fn fields(&self) -> (&str, &str, Option<u64>, &str, &str);
}

impl KeyFields for PoolKey {
    fn fields(&self) -> (&str, &str, Option<u64>, &str, &str) {
        (
            &self.service,
            &self.function,
            self.version,
            &self.function_id,
            &self.last_modified,
        )
    }
}

impl KeyFields for ResolvedFunction {
    fn fields(&self) -> (&str, &str, Option<u64>, &str, &str) {
        let spec = &self.function.spec;
        (
            &self.service,
            &spec.name,
            self.version,
            &spec.function_id,
            &spec.last_modified,
        )
    }
}

impl Hash for dyn KeyFields + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.fields().hash(state);
    }
}

impl PartialEq for dyn KeyFields + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.fields() == other.fields()
    }
}

impl Eq for dyn KeyFields + '_ {}

// An owned key hashes and compares as its fields do, so that a map keyed by
// `PoolKey` can be searched with any `KeyFields`.
impl Hash for PoolKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self as &dyn KeyFields).hash(state);
    }
}

impl PartialEq for PoolKey {
    fn eq(&self, other: &Self) -> bool {
        (self as &dyn KeyFields) == (other as &dyn KeyFields)
    }
}

impl Eq for PoolKey {}

impl<'a> Borrow<dyn KeyFields + 'a> for PoolKey {
    fn borrow(&self) -> &(dyn KeyFields + 'a) {
        self
    }
}
