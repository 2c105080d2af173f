//! In-process invoke latency: a `hello` invocation on a new instance
//! (pooling allocator, `InstancePre`, fresh store, call, drop) and on a warm
//! one, with no HTTP in the way.
//!
//! Needs the example guests: `bash scripts/build-guests.sh` (or any test
//! build) puts them in `target/guest-examples`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use wasmfc::engine::{Engine, EngineConfig, InstanceSettings, InvocationContext, Target};

fn guest(name: &str, target: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/guest-examples")
        .join(target)
        .join("release")
        .join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; run scripts/build-guests.sh first", path.display()))
}

fn ctx() -> InvocationContext {
    let target = Target {
        service: "bench".into(),
        function: "hello".into(),
        qualifier: "LATEST".into(),
        version_id: "LATEST".into(),
    };
    InvocationContext::request("bench".into(), target, Duration::from_secs(3600))
}

fn invoke(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(EngineConfig {
        cache_dir: dir.path().to_path_buf(),
        max_instances: 100,
        ..EngineConfig::default()
    })
    .unwrap();
    let settings = Arc::new(InstanceSettings {
        env: vec![],
        memory_limit_mb: 128,
        run_initializer: false,
        allowed_outbound_hosts: Arc::default(),
        fuel_budget: None,
        reuse_http_instances: true,
    });
    let event = Bytes::from_static(b"bench");

    for (name, target) in [("hello", "wasm32-wasip2"), ("echo-wasi", "wasm32-wasip1")] {
        let wasm = guest(name, target);
        let sha = wasmfc::registry::sha256_hex(&wasm);
        let prepared = rt.block_on(engine.validate(sha, Bytes::from(wasm))).unwrap();
        let context = ctx();

        c.bench_function(&format!("{name}/new-instance"), |b| {
            b.to_async(&rt).iter(|| async {
                let mut inst = engine
                    .instantiate(prepared.clone(), settings.clone(), None)
                    .await
                    .unwrap();
                let out = inst.invoke(&context, event.clone()).await;
                assert!(out.result.is_ok());
            })
        });

        if name == "hello" {
            c.bench_function(&format!("{name}/instantiate-only"), |b| {
                b.to_async(&rt).iter(|| async {
                    let inst = engine
                        .instantiate(prepared.clone(), settings.clone(), None)
                        .await
                        .unwrap();
                    drop(inst);
                })
            });
            let mut warm = rt
                .block_on(engine.instantiate(prepared.clone(), settings.clone(), None))
                .unwrap();
            c.bench_function(&format!("{name}/warm-instance"), |b| {
                b.iter(|| {
                    let out = rt.block_on(warm.invoke(&context, event.clone()));
                    if let Err(e) = &out.result {
                        panic!("warm invoke failed: {e:?}");
                    }
                })
            });
        }
    }
}

criterion_group!(benches, invoke);
criterion_main!(benches);
