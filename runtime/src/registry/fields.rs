//! Reading FC request bodies field by field.
//!
//! The SDKs send JSON `null` for "not set" and O spells a few keys
//! differently (`InstanceConcurrency` on update); reading through this
//! wrapper turns both into `None` and turns a wrongly typed value into a
//! clear `InvalidArgument` naming the field.

use serde_json::{Map, Value};

use super::RegistryError;

#[derive(Debug, Default, Clone)]
pub struct Fields {
    map: Map<String, Value>,
}

impl Fields {
    /// Parses a request body that must be a JSON object (empty = `{}`).
    pub fn parse(body: &[u8]) -> Result<Fields, RegistryError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Fields::default());
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Ok(Fields { map }),
            Ok(_) => Err(RegistryError::InvalidArgument(
                "request body must be a JSON object".into(),
            )),
            Err(e) => Err(RegistryError::InvalidArgument(format!("malformed JSON body: {e}"))),
        }
    }

    pub fn from_map(map: Map<String, Value>) -> Fields {
        Fields { map }
    }

    /// Sets `key` (a front end translating another API's field names).
    pub fn set(&mut self, key: &str, value: Value) {
        self.map.insert(key.to_string(), value);
    }

    /// Renames `from` to `to`, if present.
    pub fn rename(&mut self, from: &str, to: &str) {
        if let Some(v) = self.map.remove(from) {
            self.map.insert(to.to_string(), v);
        }
    }

    /// The raw value, with `null` read as absent.
    pub fn value(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub fn has(&self, key: &str) -> bool {
        self.value(key).is_some()
    }

    pub fn str(&self, key: &str) -> Result<Option<String>, RegistryError> {
        match self.value(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(type_error(key, "a string")),
        }
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, RegistryError> {
        match self.value(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(type_error(key, "a boolean")),
        }
    }

    /// An integer within `min..=max`.
    pub fn int(&self, key: &str, min: i64, max: i64) -> Result<Option<i64>, RegistryError> {
        let Some(v) = self.value(key) else { return Ok(None) };
        let n = v
            .as_i64()
            .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .ok_or_else(|| type_error(key, "an integer"))?;
        if n < min || n > max {
            return Err(RegistryError::InvalidArgument(format!(
                "{key} must be between {min} and {max}, got {n}"
            )));
        }
        Ok(Some(n))
    }

    pub fn float(&self, key: &str) -> Result<Option<f64>, RegistryError> {
        match self.value(key) {
            None => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| type_error(key, "a number")),
        }
    }

    pub fn object(&self, key: &str) -> Result<Option<Map<String, Value>>, RegistryError> {
        match self.value(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m.clone())),
            Some(_) => Err(type_error(key, "an object")),
        }
    }

    /// An object whose values are all strings (environment variables).
    pub fn string_map(&self, key: &str) -> Result<Option<std::collections::BTreeMap<String, String>>, RegistryError> {
        let Some(m) = self.object(key)? else { return Ok(None) };
        m.into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k, s)),
                _ => Err(RegistryError::InvalidArgument(format!("{key}.{k} must be a string"))),
            })
            .collect::<Result<_, _>>()
            .map(Some)
    }

    /// An array of strings.
    pub fn string_list(&self, key: &str) -> Result<Option<Vec<String>>, RegistryError> {
        match self.value(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| type_error(key, "an array of strings"))
                })
                .collect::<Result<_, _>>()
                .map(Some),
            Some(_) => Err(type_error(key, "an array of strings")),
        }
    }

    /// Copies `keys` that are set into `out` unchanged (pass-through fields).
    pub fn copy_into(&self, keys: &[&str], out: &mut Map<String, Value>) {
        for k in keys {
            if let Some(v) = self.value(k) {
                out.insert((*k).to_string(), v.clone());
            }
        }
    }
}

fn type_error(key: &str, what: &str) -> RegistryError {
    RegistryError::InvalidArgument(format!("{key} must be {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_is_absent_and_types_are_checked() {
        let f = Fields::parse(br#"{"a": null, "n": 5, "s": "x", "b": true, "bad": "5"}"#).unwrap();
        assert_eq!(f.str("a").unwrap(), None);
        assert_eq!(f.int("n", 1, 10).unwrap(), Some(5));
        assert!(f.int("n", 6, 10).is_err());
        assert!(f.int("bad", 0, 10).is_err());
        assert_eq!(f.bool("b").unwrap(), Some(true));
        assert!(Fields::parse(b"[1]").is_err());
        assert!(Fields::parse(b"{oops").is_err());
        assert!(Fields::parse(b"").unwrap().value("x").is_none());
    }
}
