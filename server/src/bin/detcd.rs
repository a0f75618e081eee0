//! `detcd`: the detcd server (see `detcd_server::cli`).

fn main() {
    std::process::exit(detcd_server::cli::detcd_main());
}
