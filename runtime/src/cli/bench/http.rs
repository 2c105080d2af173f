//! `wasmfc bench http`: sync InvokeFunction over loopback HTTP, beside a
//! plain axum hello-world route measured in the same run with the same
//! generator. The ratio says what wasmfc (routing, registry, pool, engine,
//! the guest) costs on top of the HTTP stack itself.

use std::time::Duration;

use super::CommonArgs;
use super::child::{ChildServer, deploy};
use super::load::{self, Until};
use super::report::{Report, Row};

#[derive(Debug, Clone, clap::Args)]
pub struct HttpArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Seconds each target is measured (after a one-second warm-up).
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
}

pub async fn run(args: HttpArgs) -> anyhow::Result<()> {
    let baseline = ChildServer::baseline().await?;
    let server = ChildServer::wasmfc(&[]).await?;
    let client = server.client();
    deploy(&client, "bench", "hello", &args.common.guest("hello"), None).await?;
    deploy(&client, "bench", "noop", &args.common.guest("noop"), None).await?;

    let targets = [
        ("axum hello-world (baseline)", baseline.addr, "/".to_string()),
        (
            "wasmfc invoke noop",
            server.addr,
            "/2016-08-15/services/bench/functions/noop/invocations".to_string(),
        ),
        (
            "wasmfc invoke hello",
            server.addr,
            "/2016-08-15/services/bench/functions/hello/invocations".to_string(),
        ),
    ];
    let mut report = Report::new("http");
    let mut base_rps = None;
    for (name, addr, path) in targets {
        let warm_up = Until::Elapsed(Duration::from_secs(1));
        load::posts(addr, &path, vec![], args.connections, warm_up).await?;
        let measured = Until::Elapsed(Duration::from_secs(args.duration));
        let result = load::posts(addr, &path, vec![], args.connections, measured)
            .await?
            .checked(name)?;
        let rps = result.per_second();
        let rss = if addr == server.addr {
            server.rss_bytes()
        } else {
            baseline.rss_bytes()
        };
        let rss = rss.map(|b| format!(", server RSS {} MB", b >> 20)).unwrap_or_default();
        let base = *base_rps.get_or_insert(rps);
        report.rows.push(
            Row::from_histogram(name, &result.latency_us, 1000.0)
                .per_second(rps)
                .ratio(rps / base)
                .note(format!("{} connections{rss}", args.connections)),
        );
    }
    report.print(args.common.json);
    Ok(())
}
