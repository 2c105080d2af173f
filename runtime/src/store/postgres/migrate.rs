//! Versioned schema migrations, safe when several nodes start at once.
//!
//! Every migration runs in one transaction that first takes a
//! transaction-scoped advisory lock: nodes starting together queue on the
//! lock, the first applies what is missing, the others then find nothing to
//! do. PostgreSQL's DDL is transactional, so a migration that fails leaves
//! no half-made schema behind. A database whose schema is newer than this
//! binary knows is refused rather than served with the wrong tables.

use super::super::{Result, StoreError};

/// One step of the schema, applied once per database.
#[derive(Debug)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// The schema's history, oldest first. Never edit a released migration:
/// add the next one.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "schema",
        sql: include_str!("migrations/0001_schema.sql"),
    },
    Migration {
        version: 2,
        name: "node_provisioned",
        sql: include_str!("migrations/0002_node_provisioned.sql"),
    },
];

/// The key of the advisory lock that serialises migrations ("wasmfc").
const MIGRATION_LOCK: i64 = 0x7761_736d_6663;

/// What [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Versions this call applied (none when the schema was up to date).
    pub applied: Vec<i32>,
    /// The schema's version now.
    pub version: i32,
}

/// Brings the database's schema up to the newest [`MIGRATIONS`] entry.
pub async fn migrate(client: &mut tokio_postgres::Client) -> Result<MigrationReport> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS wasmfc_migrations (
             version    INTEGER PRIMARY KEY,
             name       TEXT NOT NULL,
             applied_ms BIGINT NOT NULL
         )",
    )
    .await?;
    let current: i32 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM wasmfc_migrations", &[])
        .await?
        .get(0);
    let known = latest_version();
    if current > known {
        return Err(StoreError::SchemaTooNew { found: current, known });
    }
    let mut applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        tx.batch_execute(m.sql).await?;
        tx.execute(
            "INSERT INTO wasmfc_migrations (version, name, applied_ms) VALUES ($1, $2, $3)",
            &[&m.version, &m.name, &crate::util::now_ms()],
        )
        .await?;
        tracing::info!(version = m.version, name = m.name, "applied schema migration");
        applied.push(m.version);
    }
    tx.commit().await?;
    Ok(MigrationReport {
        applied,
        version: current.max(known),
    })
}

fn latest_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_count_up_from_one_without_gaps() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1, "migration {}", m.name);
            assert!(!m.sql.trim().is_empty(), "migration {} is empty", m.name);
        }
        assert_eq!(latest_version(), MIGRATIONS.len() as i32);
    }
}
