//! The store conformance suite, group commit: many writers at once. Both
//! stores gather concurrent task writes into shared transactions; what
//! each writer is answered must be what it would be answered alone —
//! duplicates refused one by one, a task's transitions applied in order
//! and each exactly once, histories numbered without gaps — on the
//! embedded SQLite and on a throwaway PostgreSQL alike.

use std::collections::BTreeMap;

use bytes::Bytes;
use wasmfc::store::{Durability, NewTask, PgStore, SqliteStore, Store, TaskUpdate, Transition};
use wasmfc::tasks::{TaskKind, TaskState};
use wasmfc_tests::postgres::Postgres;

use TaskState::*;

fn task(id: &str) -> NewTask {
    NewTask {
        service: "svc".into(),
        function: "f".into(),
        qualifier: "LATEST".into(),
        invocation_id: id.into(),
        stateful: true,
        kind: TaskKind::Event,
        payload: Bytes::from(format!("payload of {id}")),
        request_id: format!("req-{id}"),
        created_ms: 1_000,
        due_ms: 0,
        detail: "submitted".into(),
    }
}

/// Runs the burst on `store`; answers what it observed.
async fn burst(store: &Store) -> Vec<String> {
    let mut seen = Vec::new();
    // 100 submissions at once, 20 of them repeating an id.
    let inserts = (0..100).map(|i| {
        let store = store.clone();
        async move { (i % 80, store.insert_task(task(&format!("b{}", i % 80))).await) }
    });
    let mut seqs = BTreeMap::new();
    let mut duplicates = 0;
    for (n, outcome) in futures::future::join_all(inserts).await {
        match outcome {
            Ok(seq) => assert!(seqs.insert(n, seq).is_none(), "b{n} inserted twice"),
            Err(e) if e.is_unique_violation() => duplicates += 1,
            Err(e) => panic!("insert failed: {e}"),
        }
    }
    seen.push(format!("inserted {}, duplicates {duplicates}", seqs.len()));

    // Every task dequeued by two writers at once: one of them wins.
    let dequeues = seqs
        .values()
        .flat_map(|&seq| (0..2).map(move |_| Transition::new(seq, &[Enqueued], Dequeued, "taken")));
    let dequeued = futures::future::join_all(dequeues.map(|t| {
        let store = store.clone();
        async move { store.transition(t).await.unwrap().map(|a| a.state) }
    }))
    .await;
    seen.push(format!(
        "dequeued {} of {}",
        dequeued.iter().filter(|s| **s == Some(Dequeued)).count(),
        dequeued.len()
    ));

    // One caller's list with the same task three times: in order.
    let first = seqs[&0];
    // Each reads the row as the ones before it left it, and the row
    // keeps what each of them set.
    let chain = vec![
        Transition::new(first, &[Dequeued], Running, "run").with(TaskUpdate {
            attempts: Some(1),
            instance_id: Some("inst-1".into()),
            ..TaskUpdate::default()
        }),
        Transition::deciding(first, "done", |row| {
            (row.status == Running && row.attempts == 1 && row.instance_id == "inst-1").then_some(Succeeded)
        })
        .with(TaskUpdate {
            // PostgreSQL text holds no NUL; the write must still land.
            error: Some("a guest's \0 message".into()),
            ..TaskUpdate::default()
        }),
        Transition::new(first, &[Running], Failed, "too late"),
    ];
    let outcomes = store.transition_many(chain).await.unwrap();
    seen.push(format!(
        "chain: {:?}",
        outcomes.iter().map(|a| a.as_ref().map(|a| a.state)).collect::<Vec<_>>()
    ));
    let row = store.get_task("svc", "f", "b0", false).await.unwrap().unwrap();
    seen.push(format!(
        "chained row: {} attempt {} on {}, error kept: {}",
        row.status,
        row.attempts,
        row.instance_id,
        // PostgreSQL stores the NUL as U+FFFD.
        row.error.starts_with("a guest's ") && row.error.ends_with(" message")
    ));

    // The rest run and finish concurrently, each in two steps.
    let runs = seqs.values().skip(1).map(|&seq| {
        let store = store.clone();
        async move {
            let ran = store
                .transition(Transition::new(seq, &[Dequeued], Running, "run"))
                .await
                .unwrap();
            let done = store
                .transition(Transition::new(seq, &[Running], Succeeded, "done"))
                .await
                .unwrap();
            (ran.map(|a| a.state), done.map(|a| a.state))
        }
    });
    let finished = futures::future::join_all(runs).await;
    seen.push(format!(
        "finished {} of {}",
        finished
            .iter()
            .filter(|o| **o == (Some(Running), Some(Succeeded)))
            .count(),
        finished.len()
    ));

    // Histories numbered 1..n without gaps, in the order applied.
    let mut histories = BTreeMap::new();
    for (n, seq) in &seqs {
        let events = store.task_events(*seq).await.unwrap();
        let ids: Vec<i64> = events.iter().map(|e| e.event_id).collect();
        assert_eq!(ids, (1..=events.len() as i64).collect::<Vec<_>>(), "b{n}");
        let types: Vec<String> = events.into_iter().map(|e| e.event_type).collect();
        *histories.entry(types.join(">")).or_insert(0) += 1;
    }
    seen.push(format!("histories: {histories:?}"));
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_read_as_if_one_by_one_on_sqlite_and_postgres() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::Sqlite(SqliteStore::open(&dir.path().join("wasmfc.db"), Durability::Process).unwrap());
    let postgres = Store::Postgres(PgStore::open(&pg.create_database("batches")).await.unwrap());
    let expected = burst(&sqlite).await;
    assert_eq!(
        expected,
        vec![
            "inserted 80, duplicates 20".to_string(),
            "dequeued 80 of 160".into(),
            "chain: [Some(Running), Some(Succeeded), None]".into(),
            "chained row: Succeeded attempt 1 on inst-1, error kept: true".into(),
            "finished 79 of 79".into(),
            "histories: {\"Enqueued>Dequeued>Running>Succeeded\": 80}".into(),
        ]
    );
    assert_eq!(burst(&postgres).await, expected, "PostgreSQL differs from SQLite");
}
