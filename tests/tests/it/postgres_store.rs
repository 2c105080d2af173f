//! The PostgreSQL store's schema, on a throwaway PostgreSQL started by the
//! test (initdb + pg_ctl in a temp dir): `wasmfc migrate` creates it once
//! when several nodes migrate at the same moment, leaves it alone after,
//! and refuses what it cannot serve.

use std::process::Stdio;

use wasmfc_tests::postgres::Postgres;
use wasmfc_tests::wasmfc_bin;

/// Runs `wasmfc migrate --store URL`; answers its exit code and output.
async fn migrate(url: &str) -> (i32, String) {
    let out = tokio::process::Command::new(wasmfc_bin())
        .args(["migrate", "--store", url])
        .env_remove("WASMFC_STORE")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("running wasmfc migrate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn migrate_creates_the_schema_once_when_nodes_start_together() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let url = pg.create_database("together");

    let runs = futures::future::join_all((0..4).map(|_| migrate(&url))).await;
    for (code, out) in &runs {
        assert_eq!(*code, 0, "{out}");
    }
    let applied = runs
        .iter()
        .filter(|(_, out)| out.contains("applied 0001_schema, 0002_node_provisioned"))
        .count();
    let up_to_date = runs.iter().filter(|(_, out)| out.contains("up to date")).count();
    assert_eq!((applied, up_to_date), (1, 3), "{runs:?}");

    assert_eq!(
        pg.query(
            "together",
            "SELECT string_agg(version::text, ',' ORDER BY version) FROM wasmfc_migrations"
        ),
        "1,2"
    );
    let tables = pg.query(
        "together",
        "SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_name IN ('tasks', 'task_events', 'nodes', 'code', \
         'functions', 'orchestrations', 'orchestration_timers')",
    );
    assert_eq!(
        tables,
        "code,functions,nodes,orchestration_timers,orchestrations,task_events,tasks"
    );

    // A later start finds nothing to do and changes nothing.
    let (code, out) = migrate(&url).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("schema at version 2: up to date"), "{out}");
    assert_eq!(pg.query("together", "SELECT count(*) FROM wasmfc_migrations"), "2");
}

#[tokio::test]
async fn migrate_refuses_a_schema_newer_than_it_knows() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let url = pg.create_database("newer");
    assert_eq!(migrate(&url).await.0, 0);
    pg.query(
        "newer",
        "INSERT INTO wasmfc_migrations VALUES (99, 'from the future', 0)",
    );

    let (code, out) = migrate(&url).await;
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("schema is version 99, newer than this wasmfc knows (2)"),
        "{out}"
    );
}

#[tokio::test]
async fn migrate_names_what_is_wrong_with_the_store() {
    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, out) = migrate(&format!("postgres://wasmfc@127.0.0.1:{port}/postgres")).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("connecting to the store"), "{out}");

    let (code, out) = migrate("postgres://wasmfc@127.0.0.1:notaport/x").await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("not a valid PostgreSQL URL"), "{out}");

    let (code, out) = migrate("/var/lib/wasmfc/wasmfc.db").await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--store takes a postgres:// URL"), "{out}");
}
