//! `wasmfc deploy` of `guest-examples/wasmfc.toml` against the real server:
//! an empty server gets everything and the examples answer; a second run
//! changes nothing; one changed timeout updates only that function; a bad
//! manifest fails before touching the server, naming its line; `--dry-run`
//! changes nothing.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use wasmfc_tests::{Server, repo_root};

fn examples_manifest() -> PathBuf {
    repo_root().join("guest-examples").join("wasmfc.toml")
}

/// The examples' manifest, edited by `edit`, written beside a copy whose
/// code paths are absolute (so it can live in a temp dir).
fn edited_manifest(dir: &std::path::Path, edit: impl Fn(String) -> String) -> PathBuf {
    let text = std::fs::read_to_string(examples_manifest()).unwrap();
    let target = repo_root().join("target");
    let text = text
        .replace("\"../target/", &format!("\"{}/", target.display()))
        .lines()
        .filter(|l| !l.starts_with("build = "))
        .collect::<Vec<_>>()
        .join("\n");
    let path = dir.join("wasmfc.toml");
    std::fs::write(&path, edit(text)).unwrap();
    path
}

async fn deploy(s: &Server, args: &[&str]) -> (bool, String) {
    let mut all = vec!["deploy", "--no-build"];
    all.extend_from_slice(args);
    s.cli(&all).await
}

/// Every function's `lastModifiedTime` in service `examples`.
async fn modified(s: &Server) -> BTreeMap<String, String> {
    let r = s.get("/2016-08-15/services/examples/functions?limit=100").await;
    r.json()["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["functionName"].as_str().unwrap().to_string(),
                f["lastModifiedTime"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn deploying_the_examples_is_idempotent_and_updates_only_what_changed() {
    let s = Server::default().await;
    let manifest = examples_manifest();
    let manifest = manifest.to_str().unwrap();
    let (ok, out) = deploy(&s, &["-f", manifest]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("function examples/hello") && out.contains("create"),
        "{out}"
    );
    assert_eq!(
        s.invoke("examples", "hello", "deploy", &[]).await.text(),
        "Hello deploy!"
    );
    let r = s.get("/2016-08-15/proxy/examples/http-hello/greet").await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    let r = s.get("/2016-08-15/proxy/examples/http-hello-py/greet").await;
    assert_eq!(r.text(), "Hello from Python at /greet!\n");
    let cfg = s
        .get("/2016-08-15/services/examples.LATEST/functions/sleep/async-invoke-config")
        .await;
    assert_eq!(cfg.json()["statefulInvocation"], true, "{}", cfg.text());
    let alias: Value = s.get("/2016-08-15/services/examples/aliases/live").await.json();
    assert_eq!(alias["versionId"], "1", "{alias}");
    let before = modified(&s).await;
    assert_eq!(before.len(), 19, "{before:?}");

    // Nothing changed: nothing is written.
    let (ok, out) = deploy(&s, &["-f", manifest]).await;
    assert!(ok && out.contains("no changes"), "{out}");
    assert_eq!(modified(&s).await, before);

    // One timeout changed: that function alone is updated (and the alias
    // on "latest" moves to a new version of it).
    let dir = tempfile::tempdir().unwrap();
    let changed = edited_manifest(dir.path(), |t| t.replace("timeout = 60", "timeout = 30"));
    let (ok, out) = deploy(&s, &["-f", changed.to_str().unwrap()]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("function examples/sleep") && out.contains("update (timeout)"),
        "{out}"
    );
    let after = modified(&s).await;
    let differ: Vec<&String> = after.keys().filter(|k| after[*k] != before[*k]).collect();
    assert_eq!(differ, ["sleep"], "{out}");
    let f: Value = s.get("/2016-08-15/services/examples/functions/sleep").await.json();
    assert_eq!(f["timeout"], 30);
    let alias: Value = s.get("/2016-08-15/services/examples/aliases/live").await.json();
    assert_eq!(alias["versionId"], "2", "{alias}");
    let (ok, out) = deploy(&s, &["-f", changed.to_str().unwrap()]).await;
    assert!(ok && out.contains("no changes"), "{out}");
}

/// What is wrong, how to break the manifest, what the error must say.
type BadCase = (&'static str, fn(String) -> String, &'static [&'static str]);

#[tokio::test]
async fn a_bad_manifest_fails_before_touching_the_server_and_dry_run_changes_nothing() {
    let s = Server::default().await;
    let dir = tempfile::tempdir().unwrap();
    let cases: [BadCase; 3] = [
        (
            "unknown key",
            |t| t.replacen("timeout = 60", "tmeout = 60", 1),
            &["tmeout", "line"],
        ),
        (
            "bad value",
            |t| t.replacen("memory = 64", "memory = 0", 1),
            &["from 1 to 4096", "line"],
        ),
        (
            "missing file",
            |t| t.replacen("release/trap.wasm", "release/no-such.wasm", 1),
            &["no-such.wasm", "does not exist", "line"],
        ),
    ];
    for (what, edit, expected) in cases {
        let path = edited_manifest(dir.path(), edit);
        let (ok, out) = deploy(&s, &["-f", path.to_str().unwrap()]).await;
        assert!(!ok, "{what}: {out}");
        for e in expected {
            assert!(out.contains(e), "{what}: expected '{e}' in {out}");
        }
    }
    let manifest = examples_manifest();
    let (ok, out) = deploy(&s, &["-f", manifest.to_str().unwrap(), "--dry-run"]).await;
    assert!(ok && out.contains("dry run") && out.contains("create"), "{out}");
    // Nothing reached the server in any of these runs.
    let services = s.get("/2016-08-15/services").await.json();
    assert_eq!(services["services"].as_array().map(Vec::len), Some(0), "{services}");
}
