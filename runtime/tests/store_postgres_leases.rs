//! Task leases on PostgreSQL (a throwaway server per test): concurrent
//! claimers never share a task, a lapsed lease puts a running task back as
//! `Retrying` for another node, and the old owner's late completion is
//! refused by its stale fencing token — so a task ends `Succeeded` once.

use std::collections::HashSet;

use bytes::Bytes;
use tokio_postgres::Client;
use wasmfc::store::postgres::{self, Fence};
use wasmfc::store::{NewTask, TaskUpdate, Transition};
use wasmfc::tasks::{TaskKind, TaskState};
use wasmfc_tests::postgres::Postgres;

use TaskState::*;

async fn store(pg: &Postgres, db: &str) -> (String, Client) {
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

/// One node's loop: claim from every partition until nothing is left, run
/// and finish each claimed task under its token. Answers the seqs it ran.
async fn drain(mut client: Client, node: &str) -> Vec<i64> {
    let mut ran = Vec::new();
    loop {
        let mut claimed = 0;
        for queue in 0..postgres::QUEUES {
            for claim in postgres::claim_due(&mut client, node, queue, 10_000, 60_000, 16)
                .await
                .unwrap()
            {
                claimed += 1;
                let seq = claim.row.seq;
                let fence = Some(Fence(claim.token));
                assert!(
                    postgres::transition(&mut client, run(seq), fence)
                        .await
                        .unwrap()
                        .is_some()
                );
                assert!(
                    postgres::transition(&mut client, succeed(seq), fence)
                        .await
                        .unwrap()
                        .is_some()
                );
                ran.push(seq);
            }
        }
        if claimed == 0 {
            return ran;
        }
    }
}

#[tokio::test]
async fn concurrent_claimers_never_share_a_task() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let (url, mut client) = store(&pg, "claims").await;
    let mut all = HashSet::new();
    for i in 0..400 {
        let function = format!("f{}", i % 7);
        all.insert(
            postgres::insert_task(&mut client, &task(&function, &format!("t{i}")))
                .await
                .unwrap(),
        );
    }

    let a = postgres::connect(&url).await.unwrap();
    let b = postgres::connect(&url).await.unwrap();
    let (ran_a, ran_b) = tokio::join!(drain(a, "node-a"), drain(b, "node-b"));

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
    for seq in all.iter().take(20) {
        let kinds: Vec<String> = postgres::task_events(&client, *seq)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event_type)
            .collect();
        assert_eq!(kinds, ["Enqueued", "Dequeued", "Running", "Succeeded"]);
    }
}

#[tokio::test]
async fn a_lapsed_lease_moves_the_task_and_fences_off_its_old_owner() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let (_url, mut client) = store(&pg, "lapsed").await;
    let seq = postgres::insert_task(&mut client, &task("f", "lapse")).await.unwrap();
    let queue = postgres::queue_of("svc", "f");
    let t0 = 100_000;

    let claims = postgres::claim_due(&mut client, "node-a", queue, t0, 1_000, 16)
        .await
        .unwrap();
    assert_eq!(claims.len(), 1);
    let a = Fence(claims[0].token);
    assert!(
        postgres::transition(&mut client, run(seq), Some(a))
            .await
            .unwrap()
            .is_some()
    );
    // A held lease is not claimable, and not expired before its time.
    assert!(
        postgres::claim_due(&mut client, "node-b", queue, t0, 1_000, 16)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        postgres::expire_leases(&mut client, t0 + 500, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        postgres::renew_leases(&client, "node-a", &[a.0], t0 + 2_000)
            .await
            .unwrap(),
        [seq]
    );
    assert!(
        postgres::expire_leases(&mut client, t0 + 1_500, 100)
            .await
            .unwrap()
            .is_empty()
    );

    // Node A goes silent; its lease lapses and node B takes the task.
    assert_eq!(
        postgres::expire_leases(&mut client, t0 + 3_000, 100).await.unwrap(),
        [seq]
    );
    let row = postgres::get_task(&client, seq).await.unwrap().unwrap();
    assert_eq!(row.status, Retrying);
    let claims = postgres::claim_due(&mut client, "node-b", queue, t0 + 3_000, 1_000, 16)
        .await
        .unwrap();
    assert_eq!(claims.len(), 1);
    let b = Fence(claims[0].token);
    assert_ne!(a, b);
    assert!(
        postgres::transition(&mut client, run(seq), Some(b))
            .await
            .unwrap()
            .is_some()
    );

    // A's late answer is refused; B's lands; A's lease is gone.
    assert!(
        postgres::transition(&mut client, succeed(seq), Some(a))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        postgres::transition(&mut client, succeed(seq), Some(b))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        postgres::transition(&mut client, succeed(seq), Some(b))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        postgres::renew_leases(&client, "node-a", &[a.0], t0 + 9_000)
            .await
            .unwrap()
            .is_empty()
    );

    let events = postgres::task_events(&client, seq).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        kinds,
        ["Enqueued", "Dequeued", "Running", "Retrying", "Running", "Succeeded"]
    );
    assert_eq!(events[3].detail, "the lease of node node-a expired");
    let row = postgres::get_task(&client, seq).await.unwrap().unwrap();
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
