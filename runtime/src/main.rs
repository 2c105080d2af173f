use clap::Parser;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc malloc: an invocation allocates and frees many
/// small buffers across threads (request, headers, event, result, log), and
/// glibc's arena locking and consolidation were a quarter of the server's
/// CPU per warm invoke (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit codes a script can rely on: 0 done, 1 the guest failed (an
/// invocation's error), 2 a usage, manifest or API error.
fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,wasmtime=warn,cranelift=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = wasmfc::cli::Cli::parse();
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(cli.run()));
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<wasmfc::cli::GuestFailed>().is_some() => {
            eprintln!("{e:#}");
            std::process::ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
