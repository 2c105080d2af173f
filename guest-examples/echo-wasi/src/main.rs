//! `echo-wasi`: a WASI preview-1 command. The event arrives on stdin and the
//! result is what the program writes to stdout. `exit:N` exits with code N
//! (a non-zero exit is a handled error); `env:NAME` prints that variable.

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
