//! The store conformance suite: the same registry changes, applied to the
//! embedded SQLite store and to a throwaway PostgreSQL (initdb + pg_ctl in
//! a temp dir), read back the same after every batch — including a batch
//! that fails and must leave both stores as they were.

use serde_json::json;
use wasmfc::store::{ConfigTable, Durability, RegistryChange, RegistryRows, SqliteStore, postgres};
use wasmfc_tests::postgres::Postgres;

use RegistryChange::*;

/// The rows in one order, whatever order a store read them in.
fn normalized(rows: RegistryRows) -> Vec<String> {
    fn sorted<T: std::fmt::Debug>(items: &[T]) -> Vec<String> {
        let mut out: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
        out.sort();
        out
    }
    [
        sorted(&rows.services),
        sorted(&rows.functions),
        sorted(&rows.versions),
        sorted(&rows.version_counters),
        sorted(&rows.aliases),
        sorted(&rows.triggers),
        sorted(&rows.configs),
        sorted(&rows.code),
    ]
    .concat()
}

fn s(v: &str) -> String {
    v.to_string()
}

fn config(table: ConfigTable, service: &str, function: &str, doc: serde_json::Value) -> RegistryChange {
    PutConfig {
        table,
        service: s(service),
        function: s(function),
        qualifier: s("LATEST"),
        doc,
    }
}

fn batches() -> Vec<(Vec<RegistryChange>, bool)> {
    let create = vec![
        PutService {
            name: s("svc"),
            doc: json!({"serviceName": "svc"}),
        },
        PutService {
            name: s("other"),
            doc: json!({"serviceName": "other"}),
        },
        PutFunction {
            service: s("svc"),
            name: s("f"),
            doc: json!({"functionName": "f", "timeout": 3}),
        },
        PutFunction {
            service: s("svc"),
            name: s("g"),
            doc: json!({"functionName": "g"}),
        },
        PutFunction {
            service: s("other"),
            name: s("h"),
            doc: json!({"functionName": "h"}),
        },
        PutCode {
            package_sha256: s("p1"),
            wasm_sha256: s("w1"),
            package_size: 1234,
            checksum: s("12345678901234567890"),
            created_ms: 1_700_000_000_000,
        },
        SetVersionCounter {
            service: s("svc"),
            last: 1,
        },
        PutVersion {
            service: s("svc"),
            version_id: 1,
            doc: json!({"versionId": "1"}),
            functions: json!({"f": {}}),
        },
        PutAlias {
            service: s("svc"),
            name: s("prod"),
            doc: json!({"versionId": "1"}),
        },
        PutTrigger {
            service: s("svc"),
            function: s("g"),
            name: s("http"),
            doc: json!({"triggerType": "http"}),
        },
        PutTrigger {
            service: s("other"),
            function: s("h"),
            name: s("t"),
            doc: json!({"triggerType": "timer"}),
        },
        config(
            ConfigTable::AsyncInvoke,
            "svc",
            "g",
            json!({"maxAsyncRetryAttempts": 1}),
        ),
        config(ConfigTable::Provision, "svc", "g", json!({"target": 2})),
        config(ConfigTable::Concurrency, "svc", "f", json!({"reservedConcurrency": 5})),
    ];
    let update = vec![
        PutFunction {
            service: s("svc"),
            name: s("f"),
            doc: json!({"functionName": "f", "timeout": 60}),
        },
        config(ConfigTable::Provision, "svc", "g", json!({"target": 0})),
        // The same package again: content-addressed, kept as first stored.
        PutCode {
            package_sha256: s("p1"),
            wasm_sha256: s("w1"),
            package_size: 1234,
            checksum: s("12345678901234567890"),
            created_ms: 1_800_000_000_000,
        },
        SetVersionCounter {
            service: s("svc"),
            last: 2,
        },
    ];
    let delete = vec![
        // Takes g's trigger and configs with it.
        DeleteFunction {
            service: s("svc"),
            name: s("g"),
        },
        DeleteAlias {
            service: s("svc"),
            name: s("prod"),
        },
        DeleteVersion {
            service: s("svc"),
            version_id: 1,
        },
        DeleteConfig {
            table: ConfigTable::Concurrency,
            service: s("svc"),
            function: s("f"),
            qualifier: s("LATEST"),
        },
        DeleteTrigger {
            service: s("other"),
            function: s("h"),
            name: s("t"),
        },
    ];
    let delete_service = vec![DeleteService { name: s("other") }];
    // A version id that exists already fails the batch: the function put
    // before it must not be stored either.
    let failing = vec![
        PutFunction {
            service: s("svc"),
            name: s("late"),
            doc: json!({"functionName": "late"}),
        },
        PutVersion {
            service: s("svc"),
            version_id: 2,
            doc: json!({}),
            functions: json!({}),
        },
        PutVersion {
            service: s("svc"),
            version_id: 2,
            doc: json!({}),
            functions: json!({}),
        },
    ];
    vec![
        (create, true),
        (update, true),
        (delete, true),
        (delete_service, true),
        (failing, false),
    ]
}

#[tokio::test]
async fn registry_changes_read_back_the_same_on_sqlite_and_postgres() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let url = pg.create_database("conformance");
    let mut client = postgres::connect(&url).await.unwrap();
    postgres::migrate(&mut client).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("wasmfc.db"), Durability::Process).unwrap();

    for (i, (changes, succeeds)) in batches().into_iter().enumerate() {
        let on_sqlite = sqlite.apply_registry(changes.clone()).await;
        let on_postgres = postgres::apply_registry(&mut client, &changes).await;
        assert_eq!(on_sqlite.is_ok(), succeeds, "batch {i} on SQLite: {on_sqlite:?}");
        assert_eq!(
            on_postgres.is_ok(),
            succeeds,
            "batch {i} on PostgreSQL: {on_postgres:?}"
        );
        let expected = normalized(sqlite.load_registry().await.unwrap());
        let actual = normalized(postgres::load_registry(&client).await.unwrap());
        assert_eq!(actual, expected, "after batch {i}");
    }
    let rows = postgres::load_registry(&client).await.unwrap();
    assert_eq!(rows.functions.len(), 1, "{rows:?}");
    assert_eq!(rows.functions[0].2["timeout"], 60);
    assert_eq!(rows.code[0].0, "p1");
}

#[tokio::test]
async fn postgres_keeps_code_packages_content_addressed() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let url = pg.create_database("code");
    let mut client = postgres::connect(&url).await.unwrap();
    postgres::migrate(&mut client).await.unwrap();

    let bytes: Vec<u8> = (0..=255u8).cycle().take(3 << 20).collect();
    postgres::put_package(&client, "abc", &bytes).await.unwrap();
    postgres::put_package(&client, "abc", &bytes).await.unwrap();
    assert_eq!(
        postgres::package(&client, "abc").await.unwrap().as_deref(),
        Some(&bytes[..])
    );
    assert_eq!(postgres::package(&client, "missing").await.unwrap(), None);
    assert_eq!(pg.query("code", "SELECT count(*) FROM code_packages"), "1");
}
