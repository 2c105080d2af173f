//! The store conformance suite, tasks and orchestrations: one script of
//! domain operations runs against the embedded SQLite store and against a
//! throwaway PostgreSQL (initdb + pg_ctl in a temp dir), and what each
//! answers — states, refusals, histories, pages, counts, recovery — must
//! read the same. Seqs, rids and times differ between stores and are left
//! out of what is compared.

use bytes::Bytes;
use wasmfc::journal::{Control, HistoryEvent, RuntimeStatus};
use wasmfc::store::{
    ControlOutcome, Durability, FollowUp, NewOrchestration, NewTask, OrchFilter, PgStore, RunCommit, SqliteStore,
    Store, TaskFilter, TaskUpdate, Transition,
};
use wasmfc::tasks::{TaskKind, TaskState};
use wasmfc_tests::postgres::Postgres;

use TaskState::*;

/// Both stores, fresh.
async fn stores(pg: &Postgres, db: &str) -> (tempfile::TempDir, Vec<(&'static str, Store)>) {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("wasmfc.db"), Durability::Process).unwrap();
    let url = pg.create_database(db);
    let postgres = PgStore::open(&url).await.unwrap();
    (
        dir,
        vec![
            ("sqlite", Store::Sqlite(sqlite)),
            ("postgres", Store::Postgres(postgres)),
        ],
    )
}

fn task(function: &str, id: &str, created_ms: i64) -> NewTask {
    NewTask {
        service: "svc".into(),
        function: function.into(),
        qualifier: "LATEST".into(),
        invocation_id: id.into(),
        stateful: true,
        kind: TaskKind::Event,
        payload: Bytes::from(format!("payload of {id}")),
        request_id: format!("req-{id}"),
        created_ms,
        due_ms: 0,
        detail: "submitted".into(),
    }
}

/// Runs the task script on `store`; answers what it observed.
async fn task_script(store: &Store) -> Vec<String> {
    let mut seen = Vec::new();
    let mut seqs = std::collections::HashMap::new();
    for (i, id) in ["t1", "t2", "t3", "t4", "t5"].iter().enumerate() {
        seqs.insert(*id, store.insert_task(task("f", id, 1_000 + i as i64)).await.unwrap());
    }
    seqs.insert("g1", store.insert_task(task("g", "g1", 2_000)).await.unwrap());
    let dup = store.insert_task(task("f", "t1", 9_000)).await;
    seen.push(format!("duplicate: {}", dup.map_err(|e| e.to_string()).unwrap_err()));

    let step = |t: Transition| async move {
        store
            .transition(t)
            .await
            .unwrap()
            .map(|a| (a.state, a.row.status, a.follow_up_seq.is_some()))
    };
    let t1 = seqs["t1"];
    seen.push(format!(
        "{:?}",
        step(Transition::new(t1, &[Enqueued], Dequeued, "taken")).await
    ));
    seen.push(format!(
        "{:?}",
        step(Transition::new(t1, &[Enqueued], Dequeued, "again")).await
    ));
    seen.push(format!(
        "{:?}",
        step(Transition::new(t1, &[Dequeued], Running, "run")).await
    ));
    // Illegal even though the caller allows it: Running never goes back.
    seen.push(format!(
        "{:?}",
        step(Transition::new(t1, &[Running], Enqueued, "back")).await
    ));
    let mut done = Transition::new(t1, &[Running], Succeeded, "done").with(TaskUpdate {
        result: Some(Bytes::from_static(b"result of t1")),
        logs: Some(Bytes::from_static(b"log of t1\n")),
        duration_ms: Some(7),
        ..TaskUpdate::default()
    });
    done.follow_up = Some(FollowUp {
        when: Succeeded,
        task: Some(task("dest", "t1-dest", 3_000)),
        status: "Succeeded: delivered".into(),
    });
    seen.push(format!("{:?}", step(done).await));

    let batch = vec![
        Transition::new(seqs["t2"], &[Enqueued], Dequeued, "taken"),
        Transition::new(seqs["t3"], &[Enqueued], Dequeued, "taken"),
        Transition::new(seqs["t4"], &[Dequeued], Running, "not dequeued yet"),
    ];
    let many = store.transition_many(batch).await.unwrap();
    seen.push(format!(
        "{:?}",
        many.iter().map(|a| a.as_ref().map(|a| a.state)).collect::<Vec<_>>()
    ));
    let failed = Transition::new(seqs["t2"], &[Dequeued], Failed, "gave up").with(TaskUpdate {
        error: Some("boom".into()),
        ..TaskUpdate::default()
    });
    seen.push(format!("{:?}", step(failed).await));

    let row = store.get_task("svc", "f", "t1", true).await.unwrap().unwrap();
    seen.push(format!(
        "t1: {} {:?} {:?} {} {}",
        row.status, row.payload, row.result, row.destination_status, row.duration_ms
    ));
    let events: Vec<String> = store
        .task_events(t1)
        .await
        .unwrap()
        .into_iter()
        .map(|e| format!("{}#{}:{}", e.event_id, e.event_type, e.detail))
        .collect();
    seen.push(format!("t1 history: {events:?}"));
    seen.push(format!("payload: {:?}", store.task_payload(seqs["t3"]).await.unwrap()));
    seen.push(format!("logs: {:?}", store.task_logs(t1).await.unwrap()));
    seen.push(format!("no logs: {:?}", store.task_logs(seqs["t5"]).await.unwrap()));
    seen.push(format!(
        "dest: {:?}",
        store
            .get_task("svc", "dest", "t1-dest", false)
            .await
            .unwrap()
            .map(|r| r.status)
    ));

    // Lists: by state, by prefix, both orders, pages.
    let list = |f: TaskFilter| async move {
        let page = store.list_tasks(f).await.unwrap();
        let ids: Vec<String> = page.tasks.iter().map(|t| t.invocation_id.clone()).collect();
        (ids, page.next.is_some())
    };
    let of_f = |limit| TaskFilter {
        function: Some(("svc".into(), "f".into())),
        limit,
        ..TaskFilter::default()
    };
    seen.push(format!("all: {:?}", list(of_f(10)).await));
    seen.push(format!(
        "finished: {:?}",
        list(TaskFilter {
            statuses: vec![Succeeded, Failed],
            ..of_f(10)
        })
        .await
    ));
    seen.push(format!(
        "waiting, newest first: {:?}",
        list(TaskFilter {
            statuses: vec![Enqueued, Dequeued],
            descending: true,
            ..of_f(10)
        })
        .await
    ));
    let first = store.list_tasks(of_f(2)).await.unwrap();
    let second = list(TaskFilter {
        after: first.next,
        ..of_f(2)
    })
    .await;
    seen.push(format!("page 2: {second:?}"));
    seen.push(format!(
        "prefix t_: {:?}",
        list(TaskFilter {
            id_prefix: Some("t_".into()),
            ..of_f(10)
        })
        .await
    ));
    seen.push(format!(
        "across functions: {:?}",
        list(TaskFilter {
            limit: 10,
            ..TaskFilter::default()
        })
        .await
    ));
    let mut counts = store.task_counts().await.unwrap();
    counts.sort();
    seen.push(format!("counts: {counts:?}"));
    let mut by_function = store.task_counts_by_function().await.unwrap();
    by_function.sort_by_key(|(s, f, st, _)| (s.clone(), f.clone(), st.as_str()));
    seen.push(format!("by function: {by_function:?}"));

    let invalid = store.invalidate_function_tasks("svc", "g", "deleted").await.unwrap();
    seen.push(format!(
        "invalidated: {:?}",
        invalid
            .iter()
            .map(|(_, k, id)| (k.as_str(), id.clone()))
            .collect::<Vec<_>>()
    ));
    let active: Vec<String> = store
        .active_tasks()
        .await
        .unwrap()
        .into_iter()
        .map(|t| format!("{}:{}", t.invocation_id, t.status))
        .collect();
    seen.push(format!("active: {active:?}"));
    seen.push(format!(
        "purged: {}",
        store.purge_tasks_ended_before(i64::MAX).await.unwrap()
    ));
    seen.push(format!(
        "t1 after purge: {:?}",
        store.get_task("svc", "f", "t1", false).await.unwrap().map(|t| t.status)
    ));
    seen
}

#[tokio::test]
async fn tasks_behave_the_same_on_sqlite_and_postgres() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let (_dir, stores) = stores(&pg, "tasks").await;
    let sqlite = task_script(&stores[0].1).await;
    let postgres = task_script(&stores[1].1).await;
    for (i, (a, b)) in sqlite.iter().zip(&postgres).enumerate() {
        assert_eq!(a, b, "observation {i} differs (left: SQLite, right: PostgreSQL)");
    }
    assert_eq!(sqlite.len(), postgres.len());
    // And what they agree on is right.
    assert!(sqlite[0].contains("already exists"), "{}", sqlite[0]);
    assert_eq!(sqlite[1], "Some((Dequeued, Dequeued, false))");
    assert_eq!(sqlite[2], "None");
    assert_eq!(sqlite[4], "None", "an illegal transition is refused");
    assert_eq!(sqlite[5], "Some((Succeeded, Succeeded, true))");
    assert!(sqlite.iter().any(|s| s == "dest: Some(Enqueued)"), "{sqlite:?}");
}

fn orchestration(id: &str) -> NewOrchestration {
    NewOrchestration {
        instance_id: id.into(),
        name: "approval".into(),
        service: "svc".into(),
        function: "approval".into(),
        wasm_sha256: "abc".into(),
        memory_mb: 128,
        timeout_s: 3,
        version: String::new(),
        input: Some("{\"timeoutMs\":1}".into()),
        now_ms: 1_000,
    }
}

fn activity(id: &str) -> NewTask {
    NewTask {
        kind: TaskKind::Activity,
        ..task("hello", id, 1_500)
    }
}

async fn orchestration_script(store: &Store) -> Vec<String> {
    let mut seen = Vec::new();
    let row = store.orch_start(orchestration("i1")).await.unwrap();
    let rid = row.rid;
    seen.push(format!(
        "started: {} {} {} {}",
        row.status.as_str(),
        row.generation,
        row.next_seq,
        row.pending
    ));
    let again = store
        .orch_start(orchestration("i1"))
        .await
        .map(|_| ())
        .map_err(|e| e.to_string());
    seen.push(format!("again: {again:?}"));
    store.orch_mark_running(rid, 1_100).await.unwrap();
    let (row, history) = store.orch_load(rid).await.unwrap().unwrap();
    seen.push(format!(
        "loaded: {} {:?}",
        row.status.as_str(),
        history.iter().map(|r| r.event.type_name()).collect::<Vec<_>>()
    ));

    let scheduled = HistoryEvent::TaskScheduled {
        step: 0,
        name: "hello".into(),
        input: "\"x\"".into(),
        task_id: "act-0".into(),
        attempt: 0,
        retry: None,
    };
    let run = RunCommit {
        rid,
        generation: 0,
        loaded_seq: 1,
        now_ms: 1_200,
        events: vec![scheduled],
        finished: None,
        custom_status: Some("\"waiting\"".into()),
        tasks: vec![activity("act-0")],
        timers: vec![(1, 5_000)],
        continue_as_new: None,
        fence: None,
    };
    let committed = store.orch_commit(run.clone()).await.unwrap().unwrap();
    seen.push(format!(
        "committed: {} {} {}",
        committed.run_again,
        committed.tasks.len(),
        committed.generation
    ));
    // The same commit again (a re-run): its activity exists already.
    let twice = store
        .orch_commit(RunCommit {
            events: Vec::new(),
            ..run
        })
        .await
        .unwrap()
        .unwrap();
    seen.push(format!("again: {} {}", twice.run_again, twice.tasks.len()));

    let completed = HistoryEvent::TaskCompleted {
        step: 0,
        result: "\"Hello x!\"".into(),
    };
    for task_id in ["other", "act-0", "act-0"] {
        let delivered = store
            .orch_deliver(rid, 0, Some(task_id.into()), completed.clone(), 1_300)
            .await
            .unwrap();
        seen.push(format!("deliver from {task_id}: {delivered:?}"));
    }
    let fired = HistoryEvent::TimerFired {
        step: 1,
        fire_at_ms: 5_000,
    };
    for _ in 0..2 {
        seen.push(format!(
            "fire: {:?}",
            store.orch_deliver(rid, 0, None, fired.clone(), 5_001).await.unwrap()
        ));
    }
    let raised = store
        .orch_raise("i1", "Approval".into(), "{}".into(), 5_100)
        .await
        .unwrap();
    seen.push(format!("raise: {}", outcome(&raised)));
    let missing = store
        .orch_raise("nope", "Approval".into(), "{}".into(), 5_100)
        .await
        .unwrap();
    seen.push(format!("raise missing: {}", outcome(&missing)));

    let no_task = |_: &_, _: &_| activity("never");
    for op in [
        Control::Suspend("hold".into()),
        Control::Suspend("hold".into()),
        Control::Resume("go".into()),
        Control::Terminate("stop".into()),
        Control::Terminate("stop".into()),
    ] {
        let done = store.orch_control("i1", op, 6_000, no_task).await.unwrap();
        seen.push(format!("control: {}", outcome(&done)));
    }
    let history = store.orch_history(rid).await.unwrap();
    seen.push(format!(
        "history: {:?}",
        history.iter().map(|r| (r.seq, r.event.type_name())).collect::<Vec<_>>()
    ));

    store.orch_start(orchestration("i2")).await.unwrap();
    let listed = store
        .orch_list(OrchFilter {
            statuses: vec![RuntimeStatus::Pending, RuntimeStatus::Terminated],
            limit: 10,
            ..OrchFilter::default()
        })
        .await
        .unwrap();
    seen.push(format!(
        "listed: {:?}",
        listed
            .iter()
            .map(|r| (r.instance_id.clone(), r.status.as_str()))
            .collect::<Vec<_>>()
    ));
    let (pending, timers, undelivered) = store.orch_recover().await.unwrap();
    seen.push(format!(
        "recover: {} {} {}",
        pending.len(),
        timers.len(),
        undelivered.len()
    ));
    seen.push(format!(
        "purged: {}",
        store
            .orch_purge(Some("i1".into()), OrchFilter::default())
            .await
            .unwrap()
    ));
    seen.push(format!(
        "gone: {:?}",
        store.orch_get("i1").await.unwrap().map(|r| r.instance_id)
    ));
    // A finished instance's id starts a new generation.
    let row = store.orch_start(orchestration("i1")).await.unwrap();
    seen.push(format!("restarted: {} {}", row.status.as_str(), row.generation));
    seen
}

fn outcome(o: &ControlOutcome) -> String {
    match o {
        ControlOutcome::NotFound => "not found".into(),
        ControlOutcome::Gone(s) => format!("gone ({})", s.as_str()),
        ControlOutcome::WrongState(s) => format!("wrong state ({})", s.as_str()),
        ControlOutcome::Done(row, tasks) => {
            format!("{} pending={} tasks={}", row.status.as_str(), row.pending, tasks.len())
        }
    }
}

#[tokio::test]
async fn orchestrations_behave_the_same_on_sqlite_and_postgres() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let (_dir, stores) = stores(&pg, "orchestrations").await;
    let sqlite = orchestration_script(&stores[0].1).await;
    let postgres = orchestration_script(&stores[1].1).await;
    for (i, (a, b)) in sqlite.iter().zip(&postgres).enumerate() {
        assert_eq!(a, b, "observation {i} differs (left: SQLite, right: PostgreSQL)");
    }
    assert_eq!(sqlite.len(), postgres.len());
    assert_eq!(sqlite[0], "started: Pending 0 1 true");
    assert!(sqlite[1].contains("already exists"), "{}", sqlite[1]);
    // The first commit appended since it loaded: the re-run must run again.
    assert_eq!(sqlite[4], "again: true 0", "an activity is scheduled once");
    assert_eq!(sqlite[5], "deliver from other: None");
    assert_eq!(sqlite[6], "deliver from act-0: Some(true)");
    assert_eq!(sqlite[7], "deliver from act-0: None", "a result is recorded once");
    assert_eq!(sqlite[8], "fire: Some(true)");
    assert_eq!(sqlite[9], "fire: None", "a timer fires once");
}
