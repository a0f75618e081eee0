//! `detcdctl` as the end-to-end tests run it: the same `detcd_server::ctl::main`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(detcd_server::ctl::main(args));
}
