//! `detcdctl`: an etcdctl-compatible client. See `detcd_server::ctl`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(detcd_server::ctl::main(args));
}
