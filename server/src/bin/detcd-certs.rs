//! `detcd-certs`: a test CA and certificates without OpenSSL (see
//! `detcd_server::tls::certs::certs_main`).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(detcd_server::tls::certs::certs_main(&args));
}
