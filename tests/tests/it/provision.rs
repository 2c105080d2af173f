//! Provisioned concurrency: Put/Get/ListProvisionConfig, the autoscaler
//! (plain target, scheduled actions, target tracking) and provisioned starts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wasmfc_tests::{Server, ServerOptions, guests};

/// A service `prov` with function `f` from `guest`, version 1 and alias
/// `prod` pointing at it.
pub(crate) async fn with_alias(s: &Server, guest: &str) {
    s.create_service("prov").await;
    s.create_function("prov", "f", guest, json!({ "timeout": 30 })).await;
    let r = s.post_json("/2016-08-15/services/prov/versions", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = s
        .post_json(
            "/2016-08-15/services/prov/aliases",
            json!({ "aliasName": "prod", "versionId": "1" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

pub(crate) const CONFIG: &str = "/2016-08-15/services/prov.prod/functions/f/provision-config";

async fn current(s: &Server) -> u64 {
    let r = s.get(CONFIG).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()["current"].as_u64().unwrap_or(0)
}

/// Polls until `current` satisfies `ok`; returns how long it took.
async fn wait_current(s: &Server, within: Duration, ok: impl Fn(u64) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        let c = current(s).await;
        if ok(c) {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "current is {c} after {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_target_on_an_alias_is_provisioned_and_serves_provisioned_starts() {
    let s = Server::default().await;
    with_alias(&s, guests::HELLO).await;
    let r = s.put_json(CONFIG, json!({ "target": 5 })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let body = r.json();
    assert_eq!(body["target"], 5);
    assert_eq!(body["resource"], "local#prov#prod#f");
    wait_current(&s, Duration::from_secs(30), |c| c == 5).await;

    // Invocations through the alias take provisioned instances.
    let r = s.invoke("prov.prod", "f", "p", &[]).await;
    assert_eq!(r.text(), "Hello p!");
    assert_eq!(r.header("x-fc-start-type"), Some("provisioned"));
    // LATEST is another version: not provisioned.
    let r = s.invoke("prov", "f", "p", &[]).await;
    assert_eq!(r.header("x-fc-start-type"), Some("cold"));

    // Listed, with and without filters.
    let all = s.get("/2016-08-15/provision-configs").await.json();
    assert_eq!(all["provisionConfigs"].as_array().map(Vec::len), Some(1));
    let filtered = s
        .get("/2016-08-15/provision-configs?serviceName=prov&qualifier=prod&limit=10")
        .await
        .json();
    assert_eq!(filtered["provisionConfigs"][0]["current"], 5);
    // The 2021-04-06 form of Get.
    let r = s
        .get("/2021-04-06/services/prov/functions/f/provision-config?qualifier=prod")
        .await;
    assert_eq!(r.json()["target"], 5);

    // Scaling down releases instances; the idle reaper never takes them.
    s.put_json(CONFIG, json!({ "target": 1 })).await;
    wait_current(&s, Duration::from_secs(30), |c| c == 1).await;
    // Deleting the alias releases the rest.
    let r = s.delete("/2016-08-15/services/prov/aliases/prod").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let m = s.metric("wasmfc_instances_provisioned", &[]).await;
    let started = Instant::now();
    let mut live = m;
    while live > 0.0 && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        live = s.metric("wasmfc_instances_provisioned", &[]).await;
    }
    assert_eq!(live, 0.0, "provisioned instances left after deleting the alias");
}

#[tokio::test]
async fn bad_provision_configs_are_refused() {
    let s = Server::default().await;
    with_alias(&s, guests::HELLO).await;
    let r = s
        .put_json(
            "/2016-08-15/services/prov.LATEST/functions/f/provision-config",
            json!({ "target": 1 }),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let tracking = |target: Value, min: u64, max: u64| {
        json!({ "target": 1, "targetTrackingPolicies": [{
            "name": "t", "metricType": "ProvisionedConcurrencyUtilization",
            "metricTarget": target, "minCapacity": min, "maxCapacity": max }] })
    };
    for body in [
        json!({ "target": -1 }),
        json!({ "target": "five" }),
        json!({ "target": 1, "scheduledActions": [{ "name": "a", "target": 2, "scheduleExpression": "cron(0 8 * * *)" }] }),
        json!({ "target": 1, "scheduledActions": [{ "name": "a", "target": 2, "scheduleExpression": "at(tomorrow)" }] }),
        json!({ "target": 1, "scheduledActions": [{ "name": "a", "target": 2, "scheduleExpression": "rate(5m)" }] }),
        tracking(json!(1.5), 1, 2),
        tracking(json!(0), 1, 2),
        tracking(json!(0.5), 3, 2),
    ] {
        let r = s.put_json(CONFIG, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text());
        assert!(r.json()["ErrorCode"].is_string(), "{}", r.text());
    }
    let r = s
        .call(
            Method::PUT,
            CONFIG,
            "{not json",
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Unknown alias, unknown function.
    let r = s
        .put_json(
            "/2016-08-15/services/prov.nope/functions/f/provision-config",
            json!({ "target": 1 }),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    let r = s
        .put_json(
            "/2016-08-15/services/prov.prod/functions/nope/provision-config",
            json!({ "target": 1 }),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    // A qualifier without a service in List.
    let r = s.get("/2016-08-15/provision-configs?qualifier=prod").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Nothing was stored.
    assert_eq!(s.get(CONFIG).await.json()["target"], 0);
}

#[tokio::test]
async fn a_scheduled_action_changes_the_target_on_time() {
    let s = Server::default().await;
    with_alias(&s, guests::HELLO).await;
    let at = chrono::Utc::now() + chrono::Duration::seconds(3);
    let at = at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let r = s
        .put_json(
            CONFIG,
            json!({ "target": 1, "scheduledActions": [
                { "name": "burst", "target": 4, "scheduleExpression": format!("at({at})") }] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    wait_current(&s, Duration::from_secs(2), |c| c == 1).await;
    let fire = chrono::DateTime::parse_from_rfc3339(&at)
        .unwrap()
        .with_timezone(&chrono::Utc);
    wait_current(&s, Duration::from_secs(8), |c| c == 4).await;
    let late = chrono::Utc::now() - fire;
    assert!(late >= chrono::Duration::zero(), "scaled before the action fired");
    assert!(
        late < chrono::Duration::milliseconds(1500),
        "scaled {late} after the action fired"
    );
}

#[tokio::test]
async fn target_tracking_scales_out_under_load_and_back_in_after() {
    let s = Arc::new(Server::start(ServerOptions::default().arg("--provision-eval-period-secs").arg("1")).await);
    with_alias(&s, guests::SLEEP).await;
    let r = s
        .put_json(
            CONFIG,
            json!({ "target": 1, "targetTrackingPolicies": [{
                "name": "t", "metricType": "ProvisionedConcurrencyUtilization",
                "metricTarget": 0.5, "minCapacity": 1, "maxCapacity": 6 }] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    wait_current(&s, Duration::from_secs(30), |c| c == 1).await;

    // Four callers, each always in a 50 ms sleep: utilization of one
    // provisioned instance is ~1, far above 0.5.
    let running = Arc::new(AtomicBool::new(true));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (s, running) = (s.clone(), running.clone());
        load.push(tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                s.invoke("prov.prod", "f", "50", &[]).await;
            }
        }));
    }
    wait_current(&s, Duration::from_secs(10), |c| c >= 4).await;
    assert!(current(&s).await <= 6);
    running.store(false, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    // Idle: back in, progressively, to the minimum.
    wait_current(&s, Duration::from_secs(15), |c| c == 1).await;
}

/// A change of LATEST releases LATEST's instances only: the provisioned
/// instance behind `prod` (version 1, a snapshot) keeps serving.
#[tokio::test]
async fn updating_latest_keeps_the_provisioned_instances_of_a_published_version() {
    let s = Server::default().await;
    with_alias(&s, guests::HELLO).await;
    assert_eq!(s.put_json(CONFIG, json!({ "target": 1 })).await.status, StatusCode::OK);
    wait_current(&s, Duration::from_secs(30), |c| c == 1).await;
    let before = s.invoke("prov.prod", "f", "a", &[]).await;
    assert_eq!(
        before.header("x-fc-start-type"),
        Some("provisioned"),
        "{}",
        before.text()
    );
    // One LATEST instance beside the provisioned one.
    assert_eq!(s.invoke("prov", "f", "b", &[]).await.status, StatusCode::OK);
    s.wait_metric("wasmfc_instances_live", &[], 2.0, Duration::from_secs(30))
        .await;

    let r = s
        .put_json(
            "/2016-08-15/services/prov/functions/f",
            json!({ "description": "changed" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // LATEST's instance goes (the registry announced the change) ...
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.metric("wasmfc_instances_live", &[]).await > 1.0 {
        assert!(Instant::now() < deadline, "LATEST's instance was not released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ... and version 1's provisioned instance is the same one as before.
    let after = s.invoke("prov.prod", "f", "c", &[]).await;
    assert_eq!(after.header("x-fc-start-type"), Some("provisioned"), "{}", after.text());
    assert_eq!(after.header("x-fc-instance-id"), before.header("x-fc-instance-id"));
}

/// Provisioned instances of an alias with `additionalVersionWeight` stay on
/// its main version: the autoscaler does not move them with the weights.
#[tokio::test]
async fn a_weighted_alias_keeps_its_provisioned_instances_on_the_main_version() {
    let s = Server::default().await;
    with_alias(&s, guests::HELLO).await;
    let r = s
        .put_json("/2016-08-15/services/prov/functions/f", json!({ "description": "v2" }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = s.post_json("/2016-08-15/services/prov/versions", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = s
        .put_json(
            "/2016-08-15/services/prov/aliases/prod",
            json!({ "versionId": "1", "additionalVersionWeight": { "2": 0.5 } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(s.put_json(CONFIG, json!({ "target": 1 })).await.status, StatusCode::OK);
    wait_current(&s, Duration::from_secs(30), |c| c == 1).await;
    // Version 1's instance is the provisioned one (a version qualifier
    // reaches the same instances as the alias's main version) ...
    let first = s.invoke("prov.1", "f", "a", &[]).await;
    assert_eq!(first.header("x-fc-start-type"), Some("provisioned"), "{}", first.text());
    // ... and stays it over many autoscaler passes (one per 200 ms); moved
    // by the weight, it would be gone after a pass or two.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let again = s.invoke("prov.1", "f", "b", &[]).await;
        assert_eq!(again.header("x-fc-start-type"), Some("provisioned"), "{}", again.text());
        assert_eq!(again.header("x-fc-instance-id"), first.header("x-fc-instance-id"));
    }
}
