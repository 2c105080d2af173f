//! The key of a function version's instances, and looking it up without
//! building one.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

use crate::registry::ResolvedFunction;

/// Identifies one function version's instances. The registry entry's
/// revision is part of it, so an update never serves old code or settings
/// from a warm instance.
#[derive(Debug, Clone)]
pub struct PoolKey {
    pub service: String,
    pub function: String,
    pub version: Option<u64>,
    pub(super) revision: u64,
}

impl PoolKey {
    pub fn of(resolved: &ResolvedFunction) -> PoolKey {
        let (service, function, version, revision) = resolved.fields();
        PoolKey {
            service: service.to_string(),
            function: function.to_string(),
            version,
            revision,
        }
    }
}

/// The fields of a pool key, owned ([`PoolKey`]) or borrowed from a
/// [`ResolvedFunction`]. The function map is looked up on every invocation;
/// looking it up through borrowed fields spares building an owned key (two
/// string copies) each time.
pub(super) trait KeyFields {
    fn fields(&self) -> (&str, &str, Option<u64>, u64);
}

impl KeyFields for PoolKey {
    fn fields(&self) -> (&str, &str, Option<u64>, u64) {
        (&self.service, &self.function, self.version, self.revision)
    }
}

impl KeyFields for ResolvedFunction {
    fn fields(&self) -> (&str, &str, Option<u64>, u64) {
        (
            &self.service,
            &self.function.spec.name,
            self.version,
            self.function.revision,
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
