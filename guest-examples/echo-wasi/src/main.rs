//! `echo-wasi`: a WASI preview-1 command. The event arrives on stdin and the
//! result is what the program writes to stdout. `exit:N` exits with code N
//! (a non-zero exit is a handled error); `env:NAME` prints that variable;
//! `log:N` writes N bytes of log (stderr) and answers `logged N`.

use std::io::{Read, Write};

fn main() {
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        eprintln!("echo-wasi: reading stdin: {e}");
        std::process::exit(2);
    }
    eprintln!("echo-wasi: {} bytes in", input.len());
    let text = String::from_utf8_lossy(&input);
    if let Some(code) = text.strip_prefix("exit:") {
        eprintln!("echo-wasi: exiting with {code}");
        std::process::exit(code.trim().parse().unwrap_or(1));
    }
    if let Some(n) = text.strip_prefix("log:") {
        let n: usize = n.trim().parse().unwrap_or(0);
        let line = "x".repeat(99) + "\n";
        let mut err = std::io::stderr();
        for _ in 0..n / line.len() {
            let _ = err.write_all(line.as_bytes());
        }
        let _ = err.write_all(&line.as_bytes()[..n % line.len()]);
        print!("logged {n}");
        return;
    }
    if let Some(name) = text.strip_prefix("env:") {
        print!("{}", std::env::var(name.trim()).unwrap_or_default());
        return;
    }
    let mut out = std::io::stdout();
    if let Err(e) = out.write_all(&input) {
        eprintln!("echo-wasi: writing stdout: {e}");
        std::process::exit(2);
    }
}
