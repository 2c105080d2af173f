//! Cluster mode: two `wasmfc serve` nodes on one throwaway PostgreSQL.
//! Registry changes reach the other node; tasks submitted to either run on
//! either; a node killed mid-run loses nothing (its running tasks finish on
//! the other once their leases lapse); a PostgreSQL restart mid-run loses
//! nothing and requests during it get an FC-style 503.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use wasmfc_tests::postgres::Postgres;
use wasmfc_tests::{Server, ServerOptions, guests};

const SERVICE: &str = "cl";
const TERMINAL: [&str; 5] = ["Succeeded", "Failed", "Stopped", "Expired", "Invalid"];

/// A node on the shared store `url`, with short leases so that a dead
/// node's tasks come back within seconds.
async fn node(url: &str) -> Server {
    Server::start(
        ServerOptions::default()
            .arg(format!("--store={url}"))
            .arg("--lease-secs=2")
            .arg("--task-concurrency=16"),
    )
    .await
}

/// Every task of `function` as the FC list answers it.
async fn all_tasks(s: &Server, function: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut path =
            format!("/2016-08-15/services/{SERVICE}/functions/{function}/stateful-async-invocations?limit=100");
        if let Some(t) = &token {
            path.push_str(&format!("&nextToken={t}"));
        }
        let page = s.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        let page = page.json();
        all.extend(page["invocations"].as_array().unwrap().iter().cloned());
        match page["nextToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => return all,
        }
    }
}

/// Waits until all `expected` tasks of `function` are terminal.
async fn wait_all_terminal(s: &Server, function: &str, expected: usize, within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let tasks = all_tasks(s, function).await;
        let terminal = tasks
            .iter()
            .filter(|t| TERMINAL.contains(&t["status"].as_str().unwrap_or("")))
            .count();
        if terminal == expected && tasks.len() == expected {
            return tasks;
        }
        assert!(
            Instant::now() < deadline,
            "{terminal} of {} tasks ({expected} submitted) terminal after {within:?}",
            tasks.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The states of one task's history, oldest first, with their details.
async fn history(s: &Server, function: &str, id: &str) -> Vec<(String, String)> {
    s.task(SERVICE, function, id).await["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["status"].as_str().unwrap_or_default().to_string(),
                e["eventDetail"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

async fn submit(nodes: &[&Server], function: &str, count: usize, ms: impl Fn(usize) -> u64) {
    let submits = (0..count).map(|i| {
        let s = nodes[i % nodes.len()];
        let body = ms(i).to_string();
        async move {
            let r = s.invoke_async(SERVICE, function, body, Some(&format!("t{i:04}"))).await;
            assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
        }
    });
    futures::stream::iter(submits)
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
}

use futures::StreamExt;

#[tokio::test]
async fn a_node_killed_mid_run_loses_no_task_and_succeeds_none_twice() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let url = pg.create_database("kill");
    let a = node(&url).await;
    let mut b = node(&url).await;

    // Created on A, served by B once B has heard of it.
    a.create_service(SERVICE).await;
    a.create_function(SERVICE, "sleep", guests::SLEEP, json!({ "timeout": 30 }))
        .await;
    a.task_mode(SERVICE, "sleep", json!({ "maxAsyncRetryAttempts": 3 }))
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = b.invoke(SERVICE, "sleep", "1", &[]).await;
        if r.status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "B never served A's function: {}", r.text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // 2,000 tasks over both nodes, 20-120 ms each.
    const TASKS: usize = 2000;
    submit(&[&a, &b], "sleep", TASKS, |i| 20 + (i as u64 * 37) % 101).await;

    // Kill B once about half have finished.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done = a.metric("wasmfc_tasks_finished_total", &[("state", "Succeeded")]).await
            + b.metric("wasmfc_tasks_finished_total", &[("state", "Succeeded")]).await;
        if done >= (TASKS / 2) as f64 {
            break;
        }
        assert!(Instant::now() < deadline, "only {done} tasks finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let b_running = b.metric("wasmfc_tasks_in_flight", &[]).await;
    let nodes = a.get("/cluster").await.json();
    assert_eq!(nodes["store"], "postgres", "{nodes}");
    assert_eq!(nodes["nodes"].as_array().map(Vec::len), Some(2), "{nodes}");
    b.kill9();

    let tasks = wait_all_terminal(&a, "sleep", TASKS, Duration::from_secs(180)).await;
    // B is counted gone once its heartbeat is a lease period old.
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.get("/cluster").await.json()["nodes"].as_array().map(Vec::len) != Some(1) {
        assert!(
            Instant::now() < deadline,
            "B still listed: {}",
            a.get("/cluster").await.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut by_status: HashMap<&str, usize> = HashMap::new();
    for t in &tasks {
        *by_status.entry(t["status"].as_str().unwrap()).or_default() += 1;
    }
    assert_eq!(by_status.get("Succeeded"), Some(&TASKS), "{by_status:?}");

    // No history holds two successes; every task that ran more than once
    // shows the lease that expired in between.
    let mut taken_over = 0;
    for t in &tasks {
        let id = t["invocationId"].as_str().unwrap();
        let events = history(&a, "sleep", id).await;
        let succeeded = events.iter().filter(|(s, _)| s == "Succeeded").count();
        assert_eq!(succeeded, 1, "{id}: {events:?}");
        let runs = events.iter().filter(|(s, _)| s == "Running").count();
        let lapsed = events
            .iter()
            .filter(|(s, d)| s == "Retrying" && d.contains("lease of node"))
            .count();
        assert_eq!(runs, 1 + lapsed, "{id} ran {runs} times: {events:?}");
        taken_over += lapsed;
    }
    assert!(
        taken_over > 0 || b_running == 0.0,
        "B ran {b_running} tasks when it was killed, but no history shows a lease taken over"
    );
}

#[tokio::test]
async fn a_postgres_restart_mid_run_loses_nothing_and_requests_meanwhile_get_a_503() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let url = pg.create_database("restart");
    let a = node(&url).await;
    let b = node(&url).await;
    a.create_service(SERVICE).await;
    a.create_function(SERVICE, "sleep", guests::SLEEP, json!({ "timeout": 30 }))
        .await;
    a.task_mode(SERVICE, "sleep", json!({ "maxAsyncRetryAttempts": 3 }))
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    const TASKS: usize = 300;
    submit(&[&a, &b], "sleep", TASKS, |i| 50 + (i as u64 * 13) % 150).await;

    pg.stop();
    // A request that needs the store gets a clear answer, not a hang.
    let asked = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(30),
        b.invoke_async(SERVICE, "sleep", "10", Some("during-outage")),
    )
    .await
    .expect("a request during the outage hung");
    r.assert_error(503, "ServiceUnavailable");
    assert!(asked.elapsed() < Duration::from_secs(20), "{:?}", asked.elapsed());
    let r = a
        .get(&format!(
            "/2016-08-15/services/{SERVICE}/functions/sleep/stateful-async-invocations/t0001"
        ))
        .await;
    r.assert_error(503, "ServiceUnavailable");

    pg.start_server();

    let tasks = wait_all_terminal(&a, "sleep", TASKS, Duration::from_secs(120)).await;
    let succeeded = tasks.iter().filter(|t| t["status"] == "Succeeded").count();
    assert_eq!(succeeded, TASKS, "{tasks:?}");
    for t in tasks.iter().step_by(7) {
        let id = t["invocationId"].as_str().unwrap();
        let events = history(&a, "sleep", id).await;
        assert_eq!(
            events.iter().filter(|(s, _)| s == "Succeeded").count(),
            1,
            "{id}: {events:?}"
        );
    }
    // Both nodes serve again.
    for s in [&a, &b] {
        let r = s.invoke(SERVICE, "sleep", "1", &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
}

#[tokio::test]
async fn approvals_started_on_a_node_that_dies_complete_through_the_other() {
    use super::orchestrations::{activity_tasks, deploy, raise, start, wait_all_waiting, wait_status};
    const N: usize = 100;
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let url = pg.create_database("approvals");
    let mut a = node(&url).await;
    let b = node(&url).await;
    deploy(&a).await;
    for i in 0..N {
        let r = start(
            &a,
            "approval",
            &format!("ap-{i:03}"),
            Some(json!({"timeoutMs": 600000})),
        )
        .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    }
    wait_all_waiting(&b, "ap-", N).await;
    a.kill9();
    for i in 0..N {
        let r = raise(
            &b,
            &format!("ap-{i:03}"),
            "Approval",
            json!({"by": format!("approver-{i}")}),
        )
        .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    }
    for i in 0..N {
        let done = wait_status(&b, &format!("ap-{i:03}"), "Completed").await;
        assert_eq!(done["output"]["greeting"], format!("Hello approver-{i}!"), "{done}");
    }
    // One `hello` activity per instance, each run once.
    let tasks = activity_tasks(&b, "hello").await;
    assert_eq!(tasks.len(), N);
    for t in &tasks {
        assert_eq!(t["status"], "Succeeded", "{t}");
        let id = t["invocationId"].as_str().unwrap();
        let runs = b.task("durable", "hello", id).await["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["status"] == "Running")
            .count();
        assert_eq!(runs, 1, "{t}");
    }
}

/// The provision config's `current` as node `s` answers it; 0 while `s`
/// has not heard of the alias yet (registry changes travel by NOTIFY).
async fn current_on(s: &Server) -> u64 {
    let r = s.get(super::provision::CONFIG).await;
    if r.status != StatusCode::OK {
        return 0;
    }
    r.json()["current"].as_u64().unwrap_or(0)
}

/// Provisioned instances of `prov/f` through alias `prod` live on `s`.
async fn provisioned_here(s: &Server) -> usize {
    let listed = s
        .get("/2016-08-15/services/prov/functions/f/instances?qualifier=prod")
        .await
        .json();
    listed["instances"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["wasmfc"]["startType"] == "provisioned")
        .count()
}

#[tokio::test]
async fn a_provisioned_target_is_spread_over_the_live_nodes() {
    use super::provision::{CONFIG, with_alias};
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let url = pg.create_database("provision");
    let a = node(&url).await;
    let mut b = node(&url).await;
    with_alias(&a, guests::HELLO).await;
    let r = a.put_json(CONFIG, json!({ "target": 4 })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    // Two each; `current` is the cluster's sum on either node.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let here = (provisioned_here(&a).await, provisioned_here(&b).await);
        let sums = (current_on(&a).await, current_on(&b).await);
        if here == (2, 2) && sums == (4, 4) {
            break;
        }
        assert!(Instant::now() < deadline, "held {here:?}, current {sums:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // B dies: A holds the whole target within about a lease period.
    b.kill9();
    let killed = Instant::now();
    loop {
        let (here, sum) = (provisioned_here(&a).await, current_on(&a).await);
        if here == 4 && sum == 4 {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(15),
            "A holds {here}, current {sum}, {:?} after B died",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
