//! Registry persistence on PostgreSQL: the same [`RegistryChange`]s and
//! [`RegistryRows`] as the embedded store, so the registry above does not
//! know which store it writes through.

use serde_json::Value;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient, Transaction};

use super::super::{ConfigTable, RegistryChange, RegistryRows, Result};

/// Applies `changes` in one transaction: all or nothing, as on SQLite.
/// The registry's version moves with every batch, and the other nodes are
/// told (the `NOTIFY` is delivered when the transaction commits, and only
/// then), so they reload.
pub async fn apply_registry(client: &mut Client, changes: &[RegistryChange]) -> Result<()> {
    let tx = client.transaction().await?;
    for change in changes {
        apply_one(&tx, change).await?;
    }
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('registry_version', '1')
         ON CONFLICT (key) DO UPDATE SET value = (meta.value::BIGINT + 1)::TEXT",
        &[],
    )
    .await?;
    tx.execute("SELECT pg_notify($1, '')", &[&super::notify::REGISTRY_CHANNEL])
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The registry's version: it changes with every applied batch.
pub async fn registry_version(client: &impl GenericClient) -> Result<i64> {
    let row = client
        .query_opt("SELECT value FROM meta WHERE key = 'registry_version'", &[])
        .await?;
    Ok(row.and_then(|r| r.get::<_, String>(0).parse().ok()).unwrap_or(0))
}

/// Stores a code package's bytes (before its `PutCode` row says they are
/// complete). Content-addressed: storing the same package twice is a no-op.
pub async fn put_package(client: &Client, package_sha256: &str, package: &[u8]) -> Result<()> {
    client
        .execute(
            "INSERT INTO code_packages (package_sha256, package) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&package_sha256, &package],
        )
        .await?;
    Ok(())
}

/// A stored package's bytes.
pub async fn package(client: &Client, package_sha256: &str) -> Result<Option<Vec<u8>>> {
    let row = client
        .query_opt(
            "SELECT package FROM code_packages WHERE package_sha256 = $1",
            &[&package_sha256],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

async fn exec(tx: &Transaction<'_>, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<()> {
    tx.execute(sql, params).await?;
    Ok(())
}

/// `INSERT … ON CONFLICT (key) DO UPDATE SET doc`: a put of a keyed document.
fn upsert_doc(table: &str, key: &[&str]) -> String {
    let columns = key.join(", ");
    let values: Vec<String> = (1..=key.len() + 1).map(|i| format!("${i}")).collect();
    format!(
        "INSERT INTO {table} ({columns}, doc) VALUES ({}) ON CONFLICT ({columns}) DO UPDATE SET doc = excluded.doc",
        values.join(", ")
    )
}

/// `DELETE … WHERE` every `key` column equals its parameter.
fn delete_by(table: &str, key: &[&str]) -> String {
    let conditions: Vec<String> = key
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{k} = ${}", i + 1))
        .collect();
    format!("DELETE FROM {table} WHERE {}", conditions.join(" AND "))
}

const SERVICE_TABLES: [&str; 5] = ["functions", "versions", "version_counters", "aliases", "triggers"];
const FUNCTION_KEY: [&str; 3] = ["service", "function", "qualifier"];

async fn apply_one(tx: &Transaction<'_>, change: &RegistryChange) -> Result<()> {
    use RegistryChange::*;
    match change {
        PutService { name, doc } => exec(tx, &upsert_doc("services", &["name"]), &[name, &doc.to_string()]).await,
        DeleteService { name } => {
            let configs = ConfigTable::ALL.map(ConfigTable::sql_table);
            for table in SERVICE_TABLES.into_iter().chain(configs) {
                exec(tx, &delete_by(table, &["service"]), &[name]).await?;
            }
            exec(tx, &delete_by("services", &["name"]), &[name]).await
        }
        PutFunction { service, name, doc } => {
            let sql = upsert_doc("functions", &["service", "name"]);
            exec(tx, &sql, &[service, name, &doc.to_string()]).await
        }
        DeleteFunction { service, name } => {
            for table in std::iter::once("triggers").chain(ConfigTable::ALL.map(ConfigTable::sql_table)) {
                exec(tx, &delete_by(table, &["service", "function"]), &[service, name]).await?;
            }
            exec(tx, &delete_by("functions", &["service", "name"]), &[service, name]).await
        }
        PutVersion {
            service,
            version_id,
            doc,
            functions,
        } => {
            let sql = "INSERT INTO versions (service, version_id, doc, functions) VALUES ($1, $2, $3, $4)";
            let id = *version_id as i64;
            exec(tx, sql, &[service, &id, &doc.to_string(), &functions.to_string()]).await
        }
        DeleteVersion { service, version_id } => {
            let id = *version_id as i64;
            exec(tx, &delete_by("versions", &["service", "version_id"]), &[service, &id]).await
        }
        SetVersionCounter { service, last } => {
            let sql = "INSERT INTO version_counters (service, last) VALUES ($1, $2)
                       ON CONFLICT (service) DO UPDATE SET last = excluded.last";
            exec(tx, sql, &[service, &(*last as i64)]).await
        }
        PutAlias { service, name, doc } => {
            let sql = upsert_doc("aliases", &["service", "name"]);
            exec(tx, &sql, &[service, name, &doc.to_string()]).await
        }
        DeleteAlias { service, name } => exec(tx, &delete_by("aliases", &["service", "name"]), &[service, name]).await,
        PutTrigger {
            service,
            function,
            name,
            doc,
        } => {
            let sql = upsert_doc("triggers", &["service", "function", "name"]);
            exec(tx, &sql, &[service, function, name, &doc.to_string()]).await
        }
        DeleteTrigger {
            service,
            function,
            name,
        } => {
            let sql = delete_by("triggers", &["service", "function", "name"]);
            exec(tx, &sql, &[service, function, name]).await
        }
        PutConfig {
            table,
            service,
            function,
            qualifier,
            doc,
        } => {
            let sql = upsert_doc(table.sql_table(), &FUNCTION_KEY);
            exec(tx, &sql, &[service, function, qualifier, &doc.to_string()]).await
        }
        DeleteConfig {
            table,
            service,
            function,
            qualifier,
        } => {
            let sql = delete_by(table.sql_table(), &FUNCTION_KEY);
            exec(tx, &sql, &[service, function, qualifier]).await
        }
        PutCode {
            package_sha256,
            wasm_sha256,
            package_size,
            checksum,
            created_ms,
        } => {
            let sql = "INSERT INTO code (package_sha256, wasm_sha256, package_size, checksum, created_ms)
                       VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";
            let size = *package_size as i64;
            exec(tx, sql, &[package_sha256, wasm_sha256, &size, checksum, created_ms]).await
        }
    }
}

fn parse(doc: &str) -> Result<Value> {
    Ok(serde_json::from_str(doc)?)
}

/// Every registry row (a node's start, and its refresh after a change).
pub async fn load_registry(client: &impl GenericClient) -> Result<RegistryRows> {
    let mut rows = RegistryRows::default();
    for r in client
        .query("SELECT name, doc FROM services ORDER BY name", &[])
        .await?
    {
        rows.services.push((r.get(0), parse(r.get(1))?));
    }
    for r in client.query("SELECT service, name, doc FROM functions", &[]).await? {
        rows.functions.push((r.get(0), r.get(1), parse(r.get(2))?));
    }
    for r in client
        .query("SELECT service, version_id, doc, functions FROM versions", &[])
        .await?
    {
        let id: i64 = r.get(1);
        rows.versions
            .push((r.get(0), id as u64, parse(r.get(2))?, parse(r.get(3))?));
    }
    for r in client.query("SELECT service, last FROM version_counters", &[]).await? {
        let last: i64 = r.get(1);
        rows.version_counters.push((r.get(0), last as u64));
    }
    for r in client.query("SELECT service, name, doc FROM aliases", &[]).await? {
        rows.aliases.push((r.get(0), r.get(1), parse(r.get(2))?));
    }
    for r in client
        .query("SELECT service, function, name, doc FROM triggers", &[])
        .await?
    {
        rows.triggers.push((r.get(0), r.get(1), r.get(2), parse(r.get(3))?));
    }
    for table in ConfigTable::ALL {
        let sql = format!("SELECT service, function, qualifier, doc FROM {}", table.sql_table());
        for r in client.query(&sql, &[]).await? {
            rows.configs
                .push((table, r.get(0), r.get(1), r.get(2), parse(r.get(3))?));
        }
    }
    for r in client
        .query(
            "SELECT package_sha256, wasm_sha256, package_size, checksum FROM code",
            &[],
        )
        .await?
    {
        let size: i64 = r.get(2);
        rows.code.push((r.get(0), r.get(1), size as u64, r.get(3)));
    }
    Ok(rows)
}
