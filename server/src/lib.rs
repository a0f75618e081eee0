//! detcd-server: the etcd v3 gRPC services, HTTP endpoints and configuration, and the
//! `detcd` and `detcdctl` binaries.
//!
//! - [`config`]: etcd's flags, `ETCD_*` variables and YAML file, validated and turned
//!   into member and cluster IDs.
//! - [`member`]: from a configuration to a running member (data dir, identity, the
//!   driver's options); [`join`]: how a member added with `member add` learns its ID.
//! - [`grpc`]: etcd's gRPC services over the member's handle; [`http`]: `/health`,
//!   `/version`, `/metrics`; [`serve`]: both on the client listeners, each connection
//!   through [`h2_conn`] (one walk of its HTTP/2 frames: [`h2_authority`] repairs the
//!   `:authority` etcd's Go client sends, [`h2_pings`] polices its pings);
//!   [`gateway`]: etcd's JSON gateway (`/v3/...`) in front of the gRPC services;
//!   [`http_access`]: `--host-whitelist` and `--cors` for the HTTP requests.
//! - [`ctl`]: the detcdctl client.
//! - [`proxy`]: `detcd gateway start` and `detcd grpc-proxy start`, etcd's two proxies.

pub mod auth_token;
pub mod cli;
pub mod client_dispatch;
pub mod client_layer;
pub mod config;
pub mod corruption;
pub mod ctl;
pub mod discovery;
pub mod etcd_import;
pub mod gateway;
pub mod grpc;
pub mod h2_authority;
pub mod h2_conn;
pub mod h2_pings;
pub mod hpack;
pub mod http;
pub mod http_access;
pub mod httpproxy;
pub mod join;
pub mod member;
pub mod metrics;
pub mod process;
pub mod proxy;
pub mod serve;
pub mod tls;
pub mod urls;
pub mod v2;
pub mod yaml;

/// One informational line in the driver's log format (`INFO detcd: ...` on stderr).
pub fn log(message: &str) {
    detcd_io::log!(detcd_io::log::Level::Info, "detcd", "{message}");
}
