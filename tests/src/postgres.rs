//! A throwaway PostgreSQL server for tests: `initdb` in a temp dir, started
//! with `pg_ctl` on a free loopback port, stopped (immediately) on drop.
//!
//! PostgreSQL refuses to run as root, so when the tests are root (CI
//! containers) every server command runs as the `postgres` user through
//! `runuser`, on a directory handed to that user. The server binaries are
//! found through `WASMFC_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`
//! (Debian's layout), else `PATH`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The superuser `initdb` creates (trust authentication on loopback only).
pub const PG_USER: &str = "wasmfc";

/// A running throwaway PostgreSQL.
pub struct Postgres {
    pub port: u16,
    data: PathBuf,
    bin: PathBuf,
    /// Run server commands as this user (`runuser -u`), when we are root.
    run_as: Option<&'static str>,
    _tmp: tempfile::TempDir,
}

impl Postgres {
    /// Creates a cluster in a fresh temp dir and starts it.
    pub fn start() -> Postgres {
        let tmp = tempfile::tempdir().expect("tempdir");
        let run_as = is_root().then_some("postgres");
        let root = tmp.path();
        let owned = root.join("pg");
        std::fs::create_dir(&owned).expect("mkdir pg");
        if let Some(user) = run_as {
            // The temp dir is root's (0700): let the server user in, and
            // give it a directory of its own for the data and the socket.
            set_mode(root, 0o755);
            chown_to(&owned, user);
        }
        let data = owned.join("data");
        let pg = Postgres {
            port: free_port(),
            data,
            bin: server_bin_dir(),
            run_as,
            _tmp: tmp,
        };
        let init = pg.run(
            "initdb",
            &[
                "-D",
                &pg.data.to_string_lossy(),
                "-U",
                PG_USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C",
            ],
        );
        assert!(init.status.success(), "initdb failed: {}", describe(&init));
        pg.start_server();
        pg
    }

    /// `postgres://` URL of the cluster's `postgres` database.
    pub fn url(&self) -> String {
        self.url_of("postgres")
    }

    /// `postgres://` URL of database `db` (see [`Postgres::create_database`]).
    pub fn url_of(&self, db: &str) -> String {
        format!("postgres://{PG_USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates database `name`: each test takes its own.
    pub fn create_database(&self, name: &str) -> String {
        let out = self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        assert!(out.status.success(), "CREATE DATABASE {name}: {}", describe(&out));
        self.url_of(name)
    }

    /// Runs one SQL command with `psql` and returns its unaligned,
    /// tuples-only output (one row per line, `|` between columns).
    pub fn query(&self, db: &str, sql: &str) -> String {
        let out = self.psql(db, sql);
        assert!(out.status.success(), "psql {sql}: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Stops the server at once (`-m immediate`: as a crash would).
    pub fn stop(&self) {
        let out = self.pg_ctl(&["-m", "immediate", "stop"]);
        assert!(out.status.success(), "pg_ctl stop: {}", describe(&out));
    }

    /// Starts the server again on the same port and data.
    pub fn start_server(&self) {
        let sockets = self
            .data
            .parent()
            .expect("data has a parent")
            .to_string_lossy()
            .into_owned();
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {sockets} -c fsync=off",
            self.port
        );
        let log = self.data.with_extension("log").to_string_lossy().into_owned();
        let out = self.pg_ctl(&["-l", &log, "-o", &options, "-w", "-t", "60", "start"]);
        assert!(
            out.status.success(),
            "pg_ctl start: {}\n{}",
            describe(&out),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        let data = self.data.to_string_lossy().into_owned();
        let mut all = vec!["-D", &data];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all)
    }

    fn psql(&self, db: &str, sql: &str) -> Output {
        let port = self.port.to_string();
        let args = [
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            PG_USER,
            "-d",
            db,
            "-XAtq",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ];
        // psql is a client: no need to change user.
        Command::new(self.bin.join("psql"))
            .args(args)
            .output()
            .expect("running psql")
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(tool);
        let mut cmd = match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.arg("-u").arg(user).arg("--").arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        cmd.args(args)
            .current_dir(self.data.parent().expect("data has a parent"))
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", exe.display()))
    }
}

/// One throwaway server for the whole test process, started on first use
/// and stopped when the process exits (statics are never dropped, so an
/// `atexit` hook stops it).
pub fn shared() -> &'static Postgres {
    static SHARED: std::sync::OnceLock<Postgres> = std::sync::OnceLock::new();
    SHARED.get_or_init(|| {
        extern "C" fn stop_shared() {
            if let Some(pg) = SHARED.get() {
                let _ = pg.pg_ctl(&["-m", "immediate", "stop"]);
            }
        }
        let pg = Postgres::start();
        // SAFETY: registering a plain function with no preconditions.
        unsafe { libc::atexit(stop_shared) };
        pg
    })
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Best effort: the server may be stopped already.
        let _ = self.pg_ctl(&["-m", "immediate", "stop"]);
    }
}

fn describe(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn chown_to(path: &Path, user: &str) {
    let out = Command::new("chown")
        .arg(user)
        .arg(path)
        .output()
        .expect("running chown");
    assert!(out.status.success(), "chown {user}: {}", describe(&out));
}

/// A port nothing listens on now (the server binds it a moment later).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// Where `initdb`, `pg_ctl` and `psql` are.
pub fn server_bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("WASMFC_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    // An empty path makes `join` resolve the tools through PATH.
    versions.pop().map(|(_, bin)| bin).unwrap_or_default()
}
