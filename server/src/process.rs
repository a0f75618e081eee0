//! What the `detcd` process sets up around the member from its flags: logging
//! (`--log-level`, `--log-outputs`, `--log-format`, `--logger`), `--unsafe-no-fsync`,
//! `--memory-mlock`, and the `--listen-metrics-urls` listeners.

use detcd_io::log::Level;

use crate::config::Config;
use crate::grpc::Services;
use crate::serve::{self, ClientServers};

/// Applies the process-wide settings; an error means the member must not start.
pub fn apply(config: &Config) -> Result<(), String> {
    let level = Level::parse(&config.log_level)
        .ok_or_else(|| format!("unknown --log-level {:?}", config.log_level))?;
    detcd_io::log::configure(level, &config.ops.log.outputs, config.ops.log.json)?;
    if config.ops.unsafe_no_fsync {
        detcd_io::fs::set_unsafe_no_fsync(true);
        detcd_io::log!(
            Level::Warn,
            "detcd",
            "--unsafe-no-fsync is set: nothing is synced to disk, a machine crash loses data"
        );
    }
    if config.ops.memory_mlock {
        use rustix::mm::{mlockall, MlockAllFlags};
        mlockall(MlockAllFlags::CURRENT | MlockAllFlags::FUTURE).map_err(|e| {
            format!("--memory-mlock: cannot lock the process's memory in RAM (mlockall): {e}; raise RLIMIT_MEMLOCK (LimitMEMLOCK=infinity under systemd)")
        })?;
        crate::log("locked the process's memory in RAM (--memory-mlock)");
    }
    Ok(())
}

/// etcd's lines saying how each client listener serves: `(TLS, bound address)`, the
/// address as etcd names it (the socket's, `127.0.0.1:2379` for `localhost:2379`).
pub fn log_serving(listeners: &[(bool, String)]) {
    for (secure, address) in listeners {
        let how = if *secure {
            "serving client traffic securely"
        } else {
            "serving client traffic insecurely; this is strongly discouraged!"
        };
        // etcd's message alone in `msg`, the address a field of its own.
        detcd_io::log::event_with(
            detcd_io::log::Level::Info,
            how,
            &[("address", detcd_io::log::Field::Str(address))],
        );
    }
}

/// Serves `/metrics`, `/health`, `/livez`, `/readyz` and `/version` on
/// `--listen-metrics-urls` (an `https` URL with the client TLS settings, as etcd).
pub async fn serve_metrics(config: &Config, services: Services) -> Result<Option<ClientServers>, String> {
    let urls = &config.ops.listen_metrics_urls;
    if urls.is_empty() {
        return Ok(None);
    }
    let tls = serve::client_tls(urls, &config.client_tls)?;
    let listeners = serve::bind_client_urls(urls, tls).await?;
    let router = crate::http::routes(axum::Router::new(), services, false);
    for url in urls {
        crate::log(&format!("serving metrics address={url}"));
    }
    Ok(Some(ClientServers::start(listeners, router.into())))
}
