//! Registry persistence on SQLite: services, functions, versions, aliases,
//! triggers and per-function configs, stored as their FC JSON documents.

use rusqlite::{Connection, params};
use serde_json::Value;

use super::super::{ConfigTable, RegistryChange, RegistryRows, Result};
use super::SqliteStore;

impl SqliteStore {
    /// Loads every registry row (startup).
    pub async fn load_registry(&self) -> Result<RegistryRows> {
        self.read(load_rows).await
    }

    /// Applies `changes` atomically, answering after the commit.
    pub async fn apply_registry(&self, changes: Vec<RegistryChange>) -> Result<()> {
        self.write(move |c| {
            for change in &changes {
                apply_one(c, change)?;
            }
            Ok(())
        })
        .await
    }
}

fn json(v: &Value) -> String {
    v.to_string()
}

fn parse(s: String) -> Result<Value> {
    Ok(serde_json::from_str(&s)?)
}

fn apply_one(c: &Connection, change: &RegistryChange) -> Result<()> {
    use RegistryChange::*;
    match change {
        PutService { name, doc } => {
            c.execute(
                "INSERT INTO services(name, doc) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET doc = excluded.doc",
                params![name, json(doc)],
            )?;
        }
        DeleteService { name } => {
            let configs = ConfigTable::ALL.map(ConfigTable::sql_table);
            for table in ["functions", "versions", "version_counters", "aliases", "triggers"]
                .into_iter()
                .chain(configs)
            {
                c.execute(&format!("DELETE FROM {table} WHERE service = ?1"), [name])?;
            }
            c.execute("DELETE FROM services WHERE name = ?1", [name])?;
        }
        PutFunction { service, name, doc } => {
            c.execute(
                "INSERT INTO functions(service, name, doc) VALUES (?1, ?2, ?3)
                 ON CONFLICT(service, name) DO UPDATE SET doc = excluded.doc",
                params![service, name, json(doc)],
            )?;
        }
        DeleteFunction { service, name } => {
            for table in std::iter::once("triggers").chain(ConfigTable::ALL.map(ConfigTable::sql_table)) {
                c.execute(
                    &format!("DELETE FROM {table} WHERE service = ?1 AND function = ?2"),
                    params![service, name],
                )?;
            }
            c.execute(
                "DELETE FROM functions WHERE service = ?1 AND name = ?2",
                params![service, name],
            )?;
        }
        PutVersion {
            service,
            version_id,
            doc,
            functions,
        } => {
            c.execute(
                "INSERT INTO versions(service, version_id, doc, functions) VALUES (?1, ?2, ?3, ?4)",
                params![service, *version_id as i64, json(doc), json(functions)],
            )?;
        }
        DeleteVersion { service, version_id } => {
            c.execute(
                "DELETE FROM versions WHERE service = ?1 AND version_id = ?2",
                params![service, *version_id as i64],
            )?;
        }
        SetVersionCounter { service, last } => {
            c.execute(
                "INSERT INTO version_counters(service, last) VALUES (?1, ?2)
                 ON CONFLICT(service) DO UPDATE SET last = excluded.last",
                params![service, *last as i64],
            )?;
        }
        PutAlias { service, name, doc } => {
            c.execute(
                "INSERT INTO aliases(service, name, doc) VALUES (?1, ?2, ?3)
                 ON CONFLICT(service, name) DO UPDATE SET doc = excluded.doc",
                params![service, name, json(doc)],
            )?;
        }
        DeleteAlias { service, name } => {
            c.execute(
                "DELETE FROM aliases WHERE service = ?1 AND name = ?2",
                params![service, name],
            )?;
        }
        PutTrigger {
            service,
            function,
            name,
            doc,
        } => {
            c.execute(
                "INSERT INTO triggers(service, function, name, doc) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(service, function, name) DO UPDATE SET doc = excluded.doc",
                params![service, function, name, json(doc)],
            )?;
        }
        DeleteTrigger {
            service,
            function,
            name,
        } => {
            c.execute(
                "DELETE FROM triggers WHERE service = ?1 AND function = ?2 AND name = ?3",
                params![service, function, name],
            )?;
        }
        PutConfig {
            table,
            service,
            function,
            qualifier,
            doc,
        } => {
            c.execute(
                &format!(
                    "INSERT INTO {}(service, function, qualifier, doc) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(service, function, qualifier) DO UPDATE SET doc = excluded.doc",
                    table.sql_table()
                ),
                params![service, function, qualifier, json(doc)],
            )?;
        }
        DeleteConfig {
            table,
            service,
            function,
            qualifier,
        } => {
            c.execute(
                &format!(
                    "DELETE FROM {} WHERE service = ?1 AND function = ?2 AND qualifier = ?3",
                    table.sql_table()
                ),
                params![service, function, qualifier],
            )?;
        }
        PutCode {
            package_sha256,
            wasm_sha256,
            package_size,
            checksum,
            created_ms,
        } => {
            c.execute(
                "INSERT OR IGNORE INTO code(package_sha256, wasm_sha256, package_size, checksum, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![package_sha256, wasm_sha256, *package_size as i64, checksum, created_ms],
            )?;
        }
    }
    Ok(())
}

fn load_rows(c: &Connection) -> Result<RegistryRows> {
    let mut rows = RegistryRows::default();

    let mut stmt = c.prepare("SELECT name, doc FROM services ORDER BY name")?;
    for r in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
        let (name, doc) = r?;
        rows.services.push((name, parse(doc)?));
    }

    let mut stmt = c.prepare("SELECT service, name, doc FROM functions")?;
    for r in stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
    })? {
        let (s, n, doc) = r?;
        rows.functions.push((s, n, parse(doc)?));
    }

    let mut stmt = c.prepare("SELECT service, version_id, doc, functions FROM versions")?;
    for r in stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
        ))
    })? {
        let (s, v, doc, fns) = r?;
        rows.versions.push((s, v as u64, parse(doc)?, parse(fns)?));
    }

    let mut stmt = c.prepare("SELECT service, last FROM version_counters")?;
    for r in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
        let (s, last) = r?;
        rows.version_counters.push((s, last as u64));
    }

    let mut stmt = c.prepare("SELECT service, name, doc FROM aliases")?;
    for r in stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
    })? {
        let (s, n, doc) = r?;
        rows.aliases.push((s, n, parse(doc)?));
    }

    for (s, f, name, doc) in function_rows(c, "SELECT service, function, name, doc FROM triggers")? {
        rows.triggers.push((s, f, name, doc));
    }
    for table in ConfigTable::ALL {
        let sql = format!("SELECT service, function, qualifier, doc FROM {}", table.sql_table());
        for (s, f, q, doc) in function_rows(c, &sql)? {
            rows.configs.push((table, s, f, q, doc));
        }
    }

    let mut stmt = c.prepare("SELECT package_sha256, wasm_sha256, package_size, checksum FROM code")?;
    for r in stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, String>(3)?,
        ))
    })? {
        let (p, w, size, sum) = r?;
        rows.code.push((p, w, size as u64, sum));
    }
    Ok(rows)
}

/// Rows of (service, function, key, doc) read by `sql`.
fn function_rows(c: &Connection, sql: &str) -> Result<Vec<(String, String, String, Value)>> {
    let mut stmt = c.prepare(sql)?;
    let mut out = Vec::new();
    for r in stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
        ))
    })? {
        let (s, f, k, doc) = r?;
        out.push((s, f, k, parse(doc)?));
    }
    Ok(out)
}
