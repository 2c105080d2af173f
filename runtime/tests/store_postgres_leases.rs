//! Task leases on PostgreSQL (a throwaway server per test): concurrent
//! claimers never share a task, a lapsed lease is seen as lapsed and a
//! running task put back as `Retrying` for another node, and the old
//! owner's late completion is refused by its stale fencing token — so a
//! task ends `Succeeded` once.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use wasmfc::store::postgres::{AgeLimits, ClaimRequest};
use wasmfc::store::{NewTask, TaskUpdate, Transition};
use wasmfc::store::{PgStore, postgres};
use wasmfc::tasks::{TaskKind, TaskState};
use wasmfc_tests::postgres::Postgres;

use TaskState::*;

async fn store(pg: &Postgres, db: &str) -> (String, tokio_postgres::Client) {
    let url = pg.create_database(db);
    let mut client = postgres::connect(&url).await.unwrap();
    postgres::migrate(&mut client).await.unwrap();
    (url, client)
}

fn task(function: &str, id: &str) -> NewTask {
    NewTask {
        service: "svc".into(),
        function: function.into(),
        qualifier: "LATEST".into(),
        invocation_id: id.into(),
        stateful: true,
        kind: TaskKind::Event,
        payload: Bytes::from_static(b"{}"),
        request_id: format!("req-{id}"),
        created_ms: 1_000,
        due_ms: 0,
        detail: "submitted".into(),
    }
}

fn run(seq: i64) -> Transition {
    Transition::new(seq, &[Dequeued, Retrying], Running, "running").with(TaskUpdate {
        attempts: Some(1),
        ..TaskUpdate::default()
    })
}

fn succeed(seq: i64) -> Transition {
    Transition::new(seq, &[Running], Succeeded, "done").with(TaskUpdate {
        result: Some(Bytes::from_static(b"ok")),
        ..TaskUpdate::default()
    })
}

fn dequeue(seq: i64) -> Transition {
    Transition::new(seq, &[Enqueued], Dequeued, "taken from the queue")
}

/// A claim of up to 16 tasks, leased for 1 s, with room to run 8.
fn claim<'a>(node: &'a str, first_queue: i16, now_ms: i64, ages: &'a AgeLimits) -> ClaimRequest<'a> {
    ClaimRequest {
        node,
        first_queue,
        now_ms,
        lease_ms: 1_000,
        limit: 16,
        slots: 8,
        ages,
    }
}

/// One node's loop: claim until nothing is left, run and finish each
/// claimed task under its token (taking from the queue what the claim
/// left `Enqueued`: those of `ages`). Answers the seqs it ran.
async fn drain(store: PgStore, node: &str, first_queue: i16, ages: &AgeLimits) -> Vec<i64> {
    let mut ran = Vec::new();
    loop {
        let claims = store.claim_due(&claim(node, first_queue, 10_000, ages)).await.unwrap();
        if claims.is_empty() {
            return ran;
        }
        // Those taken from the queue come first, no more than there are slots.
        let taken = claims.iter().take_while(|c| c.row.status == Dequeued).count();
        assert!(taken <= 8, "{taken} tasks dequeued for 8 slots");
        assert!(claims[taken..].iter().all(|c| c.row.status == Enqueued));
        for claimed in claims {
            let seq = claimed.row.seq;
            let fence = Some(claimed.token);
            let mut steps = vec![run(seq), succeed(seq)];
            if claimed.row.status == Enqueued {
                steps.insert(0, dequeue(seq));
            }
            for step in steps {
                assert!(store.transition(step.fenced(fence)).await.unwrap().is_some());
            }
            ran.push(seq);
        }
    }
}

#[tokio::test]
async fn concurrent_claimers_never_share_a_task() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let url = pg.create_database("claims");
    let store = PgStore::open(&url).await.unwrap();
    let mut all = HashSet::new();
    let mut function_of = HashMap::new();
    for i in 0..400 {
        let function = format!("f{}", i % 7);
        let seq = store.insert_task(task(&function, &format!("t{i}"))).await.unwrap();
        all.insert(seq);
        function_of.insert(seq, function);
    }

    let (a, b) = (PgStore::open(&url).await.unwrap(), PgStore::open(&url).await.unwrap());
    // Tasks of f0 expire after 5 s, and all are 9 s old when claimed: the
    // claims leave them `Enqueued` (here, a dispatcher would expire them).
    let mut ages = AgeLimits::default();
    ages.push("svc", "f0", "LATEST", 5_000);
    ages.push("svc", "f1", "LATEST", 60_000);
    ages.push("svc", "f2", "prod", 5_000);
    let (ran_a, ran_b) = tokio::join!(drain(a, "node-a", 0, &ages), drain(b, "node-b", 8, &ages));

    let set_a: HashSet<i64> = ran_a.iter().copied().collect();
    let set_b: HashSet<i64> = ran_b.iter().copied().collect();
    assert_eq!(
        set_a.len() + set_b.len(),
        ran_a.len() + ran_b.len(),
        "a node ran a task twice"
    );
    assert!(
        set_a.is_disjoint(&set_b),
        "both nodes ran {:?}",
        set_a.intersection(&set_b)
    );
    assert_eq!(&set_a | &set_b, all);
    assert!(!set_a.is_empty() && !set_b.is_empty(), "one node claimed everything");
    let mut by_claims = 0;
    for seq in &all {
        let events = store.task_events(*seq).await.unwrap();
        let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(kinds, ["Enqueued", "Dequeued", "Running", "Succeeded"]);
        if events[1].detail.starts_with("taken from the queue by node") {
            by_claims += 1;
            assert_ne!(function_of[seq], "f0", "an expired task was taken: {events:?}");
        }
    }
    assert!(
        by_claims > 100,
        "only {by_claims} tasks were taken from the queue by claims"
    );
}

/// What a node does with a lapsed `Running` task: a retry, fenced by the
/// lapsed token and only while the lease is still lapsed.
fn put_back(seq: i64, token: i64, now: i64, owner: &str) -> Transition {
    let detail = format!("the lease of node {owner} expired during attempt 1");
    Transition::deciding(seq, detail, move |row| {
        (row.status == Running && row.lease_until_ms < now).then_some(Retrying)
    })
    .fenced(Some(token))
}

#[tokio::test]
async fn a_lapsed_lease_moves_the_task_and_fences_off_its_old_owner() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let url = pg.create_database("lapsed");
    let store = PgStore::open(&url).await.unwrap();
    let seq = store.insert_task(task("f", "lapse")).await.unwrap();
    let queue = postgres::queue_of("svc", "f");
    let t0 = 100_000;

    let claims = store
        .claim_due(&claim("node-a", queue, t0, &AgeLimits::default()))
        .await
        .unwrap();
    assert_eq!(claims.len(), 1);
    let a = claims[0].token;
    assert_eq!(claims[0].row.status, Dequeued);
    assert!(store.transition(run(seq).fenced(Some(a))).await.unwrap().is_some());
    // A held lease is not claimable, and not lapsed before its time.
    assert!(
        store
            .claim_due(&claim("node-b", queue, t0, &AgeLimits::default()))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.lapsed_leases(t0 + 500, 100).await.unwrap().is_empty());
    assert_eq!(
        store.renew_leases("node-a", &[a], t0 + 2_000).await.unwrap(),
        [(seq, Running)]
    );
    assert!(store.lapsed_leases(t0 + 1_500, 100).await.unwrap().is_empty());

    // Node A goes silent; its lease lapses and node B takes the task.
    let lapsed = store.lapsed_leases(t0 + 3_000, 100).await.unwrap();
    assert_eq!(lapsed.len(), 1);
    assert_eq!(
        (lapsed[0].row.seq, lapsed[0].token, lapsed[0].owner.as_str()),
        (seq, a, "node-a")
    );
    // Not while the lease is still held (a renewal came in between).
    assert!(
        store
            .transition(put_back(seq, a, t0 + 1_000, "node-a"))
            .await
            .unwrap()
            .is_none()
    );
    let applied = store.transition(put_back(seq, a, t0 + 3_000, "node-a")).await.unwrap();
    assert_eq!(applied.map(|a| a.state), Some(Retrying));
    let claims = store
        .claim_due(&claim("node-b", queue, t0 + 3_000, &AgeLimits::default()))
        .await
        .unwrap();
    assert_eq!(claims.len(), 1);
    let b = claims[0].token;
    assert_ne!(a, b);
    assert!(store.transition(run(seq).fenced(Some(b))).await.unwrap().is_some());

    // A's late answer is refused; B's lands; A's lease is gone.
    assert!(store.transition(succeed(seq).fenced(Some(a))).await.unwrap().is_none());
    assert!(store.transition(succeed(seq).fenced(Some(b))).await.unwrap().is_some());
    assert!(store.transition(succeed(seq).fenced(Some(b))).await.unwrap().is_none());
    assert!(store.renew_leases("node-a", &[a], t0 + 9_000).await.unwrap().is_empty());

    let events = store.task_events(seq).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        kinds,
        ["Enqueued", "Dequeued", "Running", "Retrying", "Running", "Succeeded"]
    );
    assert_eq!(events[3].detail, "the lease of node node-a expired during attempt 1");
    let row = store.get_task("svc", "f", "lapse", false).await.unwrap().unwrap();
    assert_eq!(row.status, Succeeded);
    assert_eq!(pg.query("lapsed", "SELECT lease_owner IS NULL FROM tasks"), "t");
}

#[tokio::test]
async fn nodes_are_live_while_their_heartbeats_are_fresh() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let (_url, client) = store(&pg, "nodes").await;
    let node = |id: &str, at: i64, running: i64| postgres::NodeRow {
        node_id: id.into(),
        address: format!("127.0.0.1:{}", 9000 + running),
        started_ms: 1_000,
        heartbeat_ms: at,
        tasks_running: running,
        instances: 2 * running,
        provisioned: format!("{{\"s/f/prod\":{running}}}"),
    };
    postgres::heartbeat(&client, &node("a", 10_000, 1)).await.unwrap();
    postgres::heartbeat(&client, &node("b", 10_000, 2)).await.unwrap();
    // A's next heartbeat updates its row; B's stops.
    postgres::heartbeat(&client, &node("a", 14_000, 3)).await.unwrap();

    let live = postgres::live_nodes(&client, 9_000).await.unwrap();
    assert_eq!(live, [node("a", 14_000, 3), node("b", 10_000, 2)]);
    // One lease period (say 3 s) after B's last heartbeat, B is gone.
    let live = postgres::live_nodes(&client, 14_000 - 3_000).await.unwrap();
    assert_eq!(live, [node("a", 14_000, 3)]);
    postgres::leave(&client, "a").await.unwrap();
    assert!(
        postgres::live_nodes(&client, 0)
            .await
            .unwrap()
            .iter()
            .all(|n| n.node_id == "b")
    );
}
