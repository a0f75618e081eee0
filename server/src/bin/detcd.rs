//! `detcd`: the detcd server. For now it reads and validates the configuration exactly as
//! etcd would (flags, `ETCD_*` variables, `--config-file`), prints the configuration it would
//! start with, and exits non-zero: the server itself arrives with `core::node`.

use detcd_server::config::{Config, ConfigError, Invocation};

/// Exit status when the configuration is valid but there is no server to run yet.
const EXIT_NOT_IMPLEMENTED: i32 = 3;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env: Vec<(String, String)> = std::env::vars().collect();
    let read = |path: &str| std::fs::read_to_string(path).map_err(|e| e.to_string());
    let code = match Config::load(&args, &env, &read) {
        Ok(Invocation::Help) => {
            println!("usage: detcd [flags]\n\nflags, ETCD_* variables and --config-file as etcd's (see `etcd --help`).");
            0
        }
        Ok(Invocation::Version) => {
            println!("detcd Version: {}\nAPI version: 3.6", env!("CARGO_PKG_VERSION"));
            0
        }
        Ok(Invocation::Run(config)) => {
            for w in &config.warnings {
                eprintln!("detcd: warning: {w}");
            }
            print!("{}", config.render());
            eprintln!("detcd: configuration is valid, but the server is not implemented yet (core::node is missing)");
            EXIT_NOT_IMPLEMENTED
        }
        Err(ConfigError::Flag(msg)) => {
            eprintln!("{msg}\nusage: detcd [flags] (see `detcd --help`)");
            2
        }
        Err(e) => {
            eprintln!("detcd: error verifying flags, {e}. See 'detcd --help'.");
            1
        }
    };
    std::process::exit(code);
}
