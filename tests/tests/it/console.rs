//! The web console over HTTP, posting its forms as a browser does: the
//! pages list what the API holds, a submitted task (custom id, delay) is
//! the API's task, Stop and Re-run act on it, a POST without the page's
//! CSRF token is refused, and with credentials the console needs a
//! sign-in (a wrong secret gets no session).

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::json;
use wasmfc_tests::{Server, ServerOptions, guests};

const S: &str = "console";

fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().unwrap()
}

/// The page's CSRF token (its `csrf-token` meta tag).
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf-token\" content=\"").expect("a csrf meta tag") + 27;
    html[at..].split('"').next().unwrap().to_string()
}

async fn page(c: &reqwest::Client, s: &Server, path: &str) -> (StatusCode, String) {
    let r = c.get(s.url(path)).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

#[tokio::test]
async fn a_task_submitted_in_the_console_is_the_apis_task_and_can_be_stopped_and_rerun() {
    let s = Server::default().await;
    s.create_service(S).await;
    s.create_function(S, "sleep", guests::SLEEP, json!({ "timeout": 60 }))
        .await;
    s.task_mode(S, "sleep", json!({})).await;
    let c = browser();

    let root = c.get(s.url("/")).send().await.unwrap();
    assert_eq!(root.status(), StatusCode::SEE_OTHER);
    let (status, overview) = page(&c, &s, "/console").await;
    assert_eq!(status, StatusCode::OK, "{overview}");
    assert!(
        overview.contains("/console/services/console/functions/sleep"),
        "{overview}"
    );

    let fpath = "/console/services/console/functions/sleep";
    let (_, fpage) = page(&c, &s, fpath).await;
    let csrf = csrf_of(&fpage);

    // Without the token: refused, and nothing is submitted.
    let r = c
        .post(s.url(&format!("{fpath}/tasks")))
        .form(&[("id_mode", "custom"), ("invocation_id", "forged"), ("event", "{}")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let forged = s
        .get(&format!(
            "/2016-08-15/services/{S}/functions/sleep/stateful-async-invocations/forged"
        ))
        .await;
    assert_eq!(forged.status, StatusCode::NOT_FOUND);

    // A bad id is the API's error, shown as a page.
    let r = c
        .post(s.url(&format!("{fpath}/tasks")))
        .form(&[
            ("csrf", csrf.as_str()),
            ("id_mode", "custom"),
            ("invocation_id", "9bad"),
            ("event", "{}"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("Request id"));

    let r = c
        .post(s.url(&format!("{fpath}/tasks")))
        .form(&[
            ("csrf", csrf.as_str()),
            ("id_mode", "custom"),
            ("invocation_id", "video-1"),
            ("delay", "2"),
            ("event", r#"{"ms": 60000}"#),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap());
    let task_path = format!("{fpath}/tasks/video-1");
    assert_eq!(r.headers()["location"], task_path.as_str());
    let t = s.task(S, "sleep", "video-1").await;
    assert_eq!(t["status"], "Enqueued", "{t}");
    assert!(t["wasmfc"]["nextRunTime"].as_i64().unwrap() >= t["startedTime"].as_i64().unwrap() + 2000);

    s.wait_status(S, "sleep", "video-1", "Running", Duration::from_secs(60))
        .await;
    let (_, tpage) = page(&c, &s, &task_path).await;
    assert!(tpage.contains("data-status=\"Running\""), "{tpage}");
    let r = c
        .post(s.url(&format!("{task_path}/stop")))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    s.wait_status(S, "sleep", "video-1", "Stopped", Duration::from_secs(30))
        .await;

    let r = c
        .post(s.url(&format!("{task_path}/rerun")))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let new_path = r.headers()["location"].to_str().unwrap().to_string();
    let new_id = new_path.rsplit('/').next().unwrap().to_string();
    assert_ne!(new_id, "video-1");
    let rerun = s.task(S, "sleep", &new_id).await;
    assert_eq!(rerun["invocationPayload"], r#"{"ms": 60000}"#, "{rerun}");

    // The list filters by status, kept in the URL.
    let (_, stopped) = page(&c, &s, &format!("{fpath}?status=Stopped")).await;
    assert!(stopped.contains("video-1"), "{stopped}");
    assert!(
        !stopped.contains(&format!("data-task=\"{new_id}\"")),
        "{new_id} is not Stopped: {stopped}"
    );

    // Bulk stop by prefix: the confirmation counts, the action stops.
    let (_, confirm) = page(&c, &s, &format!("{fpath}/tasks/bulk?action=stop&prefix={new_id}")).await;
    assert!(confirm.contains("id=\"bulk-count\">1<"), "{confirm}");
    let r = c
        .post(s.url(&format!("{fpath}/tasks/bulk?action=stop&prefix={new_id}")))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    s.wait_status(S, "sleep", &new_id, "Stopped", Duration::from_secs(30))
        .await;
}

#[tokio::test]
async fn with_credentials_the_console_needs_a_sign_in_and_refuses_a_wrong_secret() {
    let s = Server::start(ServerOptions::default().with_credentials("ak1", "secret1")).await;
    let c = browser();
    let r = c.get(s.url("/console")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/console/sign-in");

    let wrong = c
        .post(s.url("/console/sign-in"))
        .form(&[("access_key_id", "ak1"), ("access_key_secret", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get("set-cookie").is_none());

    let ok = c
        .post(s.url("/console/sign-in"))
        .form(&[("access_key_id", "ak1"), ("access_key_secret", "secret1")])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    let cookie = ok.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Max-Age="));
    let session = cookie.split(';').next().unwrap().to_string();
    let r = c
        .get(s.url("/console"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(html.contains("Sign out"), "{html}");

    let out = c
        .post(s.url("/console/sign-out"))
        .header("cookie", &session)
        .form(&[("csrf", csrf_of(&html).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let r = c
        .get(s.url("/console"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "the session ended");
}

/// The provisioning page saves a config through PutProvisionConfig's
/// rules (LATEST and bad JSON refused with a message), shows target and
/// current once the autoscaler has converged, and charts the function's
/// starts from the server's own per-minute figures.
#[tokio::test]
async fn the_provisioning_page_edits_a_config_and_charts_target_current_and_starts() {
    let s = Server::default().await;
    s.create_service(S).await;
    s.create_function(S, "hello", guests::HELLO, json!({})).await;
    let r = s
        .post_json(&format!("/2016-08-15/services/{S}/versions"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = s
        .post_json(
            &format!("/2016-08-15/services/{S}/aliases"),
            json!({ "aliasName": "prod", "versionId": "1" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    for _ in 0..3 {
        assert_eq!(s.invoke(S, "hello", "p", &[]).await.text(), "Hello p!");
    }
    let c = browser();
    let ppath = "/console/services/console/functions/hello/provisioning";
    let (status, html) = page(&c, &s, ppath).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("Provision this function"), "{html}");
    let csrf = csrf_of(&html);
    let post = |qualifier: &'static str, config: &'static str| {
        c.post(s.url(ppath))
            .form(&[("csrf", csrf.as_str()), ("qualifier", qualifier), ("config", config)])
            .send()
    };

    let r = post("LATEST", r#"{"target": 1}"#).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("Request id"));
    let r = post("prod", "{not json").await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("not a JSON object"));

    let r = post(
        "prod",
        r#"{"target": 2, "scheduledActions": [], "targetTrackingPolicies": []}"#,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let api = format!("/2016-08-15/services/{S}.prod/functions/hello/provision-config");
    assert_eq!(s.get(&api).await.json()["target"], 2);
    let started = std::time::Instant::now();
    loop {
        let (_, html) = page(&c, &s, ppath).await;
        if html.contains(r#"<dd class="config-current">2</dd>"#) {
            assert!(html.contains(r#"data-qualifier="prod""#));
            assert!(html.contains("prod: target vs current"), "{html}");
            // The latency chart draws a line only for kinds that ran:
            // the first call was a cold start.
            let latency = html
                .split_once(r#"aria-label="Mean invocation time"#)
                .map_or("", |(_, rest)| rest);
            let latency = latency.split("</figure>").next().unwrap_or_default();
            assert!(latency.contains(r#"<polyline class="cold""#), "{latency}");
            assert!(!latency.contains(r#"<polyline class="provisioned""#), "{latency}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never converged: {html}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The list across functions shows every function's tasks with the
/// function they belong to, under the same filters, newest first.
#[tokio::test]
async fn the_task_list_across_functions_shows_each_tasks_function_and_filters() {
    let s = Server::default().await;
    s.create_service(S).await;
    for f in ["hello", "fail"] {
        let guest = if f == "hello" { guests::HELLO } else { guests::FAIL };
        s.create_function(S, f, guest, json!({})).await;
        s.task_mode(S, f, json!({ "maxAsyncRetryAttempts": 0 })).await;
    }
    for (f, id) in [("hello", "a-1"), ("fail", "b-1"), ("hello", "a-2")] {
        let r = s.invoke_async(S, f, "x", Some(id)).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    }
    s.wait_status(S, "hello", "a-2", "Succeeded", Duration::from_secs(30))
        .await;
    s.wait_status(S, "fail", "b-1", "Failed", Duration::from_secs(30)).await;
    let c = browser();

    let (status, html) = page(&c, &s, "/console/tasks").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let order: Vec<usize> = ["data-task=\"a-2\"", "data-task=\"b-1\"", "data-task=\"a-1\""]
        .iter()
        .map(|t| html.find(t).unwrap_or_else(|| panic!("{t} missing: {html}")))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "newest first: {order:?}");
    assert!(html.contains(">console/fail</a>"), "{html}");
    assert!(html.contains(r#"data-feed="/console/feed""#));

    let (_, failed) = page(&c, &s, "/console/tasks?status=Failed").await;
    assert!(
        failed.contains("data-task=\"b-1\"") && !failed.contains("data-task=\"a-1\""),
        "{failed}"
    );
    let (_, oldest) = page(&c, &s, "/console/tasks?order=asc&prefix=a-").await;
    let (a1, a2) = (oldest.find("data-task=\"a-1\""), oldest.find("data-task=\"a-2\""));
    assert!(
        a1.is_some() && a1 < a2 && !oldest.contains("data-task=\"b-1\""),
        "{oldest}"
    );
}

/// Triggers, versions and aliases are managed from the function's page,
/// with the API's rules: an alias needs an existing version.
#[tokio::test]
async fn triggers_versions_and_aliases_are_managed_from_the_function_page() {
    let s = Server::default().await;
    s.create_service(S).await;
    s.create_function(S, "web", guests::HTTP_HELLO, json!({})).await;
    let c = browser();
    let fpath = "/console/services/console/functions/web";
    let (_, html) = page(&c, &s, fpath).await;
    let csrf = csrf_of(&html);
    let post = |path: String, form: Vec<(&'static str, &'static str)>| {
        let mut form = form;
        form.push(("csrf", csrf.as_str()));
        c.post(s.url(&path)).form(&form).send()
    };

    let r = post(
        format!("{fpath}/triggers"),
        vec![("name", "site"), ("methods", "get, post"), ("auth", "anonymous")],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let t = s
        .get(&format!("/2016-08-15/services/{S}/functions/web/triggers/site"))
        .await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.text());
    assert_eq!(t.json()["triggerConfig"]["methods"], json!(["GET", "POST"]));

    let r = post(format!("{fpath}/aliases"), vec![("name", "prod"), ("version", "1")])
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "no version 1 yet");
    let r = post(format!("{fpath}/versions"), vec![("description", "first")])
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = post(format!("{fpath}/aliases"), vec![("name", "prod"), ("version", "1")])
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let a = s.get(&format!("/2016-08-15/services/{S}/aliases/prod")).await;
    assert_eq!(a.json()["versionId"], "1", "{}", a.text());
    let (_, html) = page(&c, &s, fpath).await;
    assert!(html.contains("prod → 1") && html.contains("first"), "{html}");

    for path in [
        format!("{fpath}/aliases/prod/delete"),
        format!("{fpath}/triggers/site/delete"),
    ] {
        assert_eq!(post(path, vec![]).await.unwrap().status(), StatusCode::SEE_OTHER);
    }
    assert_eq!(
        s.get(&format!("/2016-08-15/services/{S}/aliases/prod")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.get(&format!("/2016-08-15/services/{S}/functions/web/triggers/site"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

/// A filter on a running and a finished state merges both, newest first.
#[tokio::test]
async fn a_filter_on_running_and_finished_states_lists_both_newest_first() {
    let s = Server::default().await;
    s.create_service(S).await;
    s.create_function(S, "sleep", guests::SLEEP, json!({ "timeout": 120 }))
        .await;
    s.task_mode(S, "sleep", json!({ "maxAsyncRetryAttempts": 0 })).await;
    for (id, ms) in [("done-1", 1), ("long-1", 600_000), ("done-2", 1), ("stop-1", 600_000)] {
        let r = s
            .invoke_async(S, "sleep", json!({ "ms": ms }).to_string(), Some(id))
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
        let want = if ms == 1 { "Succeeded" } else { "Running" };
        s.wait_status(S, "sleep", id, want, Duration::from_secs(30)).await;
    }
    let r = s
        .call(
            reqwest::Method::PUT,
            &format!("/2016-08-15/services/{S}/functions/sleep/stateful-async-invocations/stop-1"),
            "",
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    s.wait_status(S, "sleep", "stop-1", "Stopped", Duration::from_secs(30))
        .await;

    let (_, html) = page(
        &browser(),
        &s,
        "/console/services/console/functions/sleep?status=Running&status=Stopped",
    )
    .await;
    let at = |id: &str| html.find(&format!("data-task=\"{id}\""));
    assert!(at("stop-1").is_some() && at("long-1").is_some(), "{html}");
    assert!(at("stop-1") < at("long-1"), "newest first");
    assert!(at("done-1").is_none() && at("done-2").is_none(), "{html}");
}
