//! `detcd` as the end-to-end tests run it: the same `detcd_server::cli::detcd_main`.

fn main() {
    std::process::exit(detcd_server::cli::detcd_main());
}
