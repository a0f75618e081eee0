//! `detcd gateway start`: etcd's L4 gateway (`proxy/tcpproxy`). Every accepted
//! connection is spliced to one endpoint, picked round robin among the active ones. An
//! endpoint that refuses a connection is marked inactive (and the next one tried for the
//! same client); every `--retry-delay` a connection is tried to each inactive endpoint
//! and the ones that accept are active again. An application on every host talks to the
//! gateway on localhost and never needs to know the cluster's members.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// How long a connection to an endpoint may take before the endpoint counts as dead.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Remote {
    addr: String,
    active: bool,
}

/// The endpoints and the round-robin position.
#[derive(Debug, Clone)]
pub struct TcpProxy {
    remotes: Arc<Mutex<(Vec<Remote>, usize)>>,
    retry_delay: Duration,
}

impl TcpProxy {
    pub fn new(endpoints: &[String], retry_delay: Duration) -> TcpProxy {
        let remotes = endpoints
            .iter()
            .map(|addr| Remote {
                addr: addr.clone(),
                active: true,
            })
            .collect();
        TcpProxy {
            remotes: Arc::new(Mutex::new((remotes, 0))),
            retry_delay: if retry_delay.is_zero() {
                Duration::from_secs(300)
            } else {
                retry_delay
            },
        }
    }

    /// The next active endpoint, round robin.
    fn pick(&self) -> Option<String> {
        let mut guard = self.remotes.lock().unwrap_or_else(PoisonError::into_inner);
        let (remotes, next) = &mut *guard;
        for _ in 0..remotes.len() {
            let r = &remotes[*next % remotes.len()];
            *next = next.wrapping_add(1);
            if r.active {
                return Some(r.addr.clone());
            }
        }
        None
    }

    fn set_active(&self, addr: &str, active: bool) {
        let mut guard = self.remotes.lock().unwrap_or_else(PoisonError::into_inner);
        for r in guard.0.iter_mut().filter(|r| r.addr == addr) {
            r.active = active;
        }
    }

    /// Serves `listener` until the task is dropped.
    pub async fn run(self, listener: TcpListener) {
        let endpoints: Vec<String> = {
            let guard = self.remotes.lock().unwrap_or_else(PoisonError::into_inner);
            guard.0.iter().map(|r| r.addr.clone()).collect()
        };
        crate::log(&format!("ready to proxy client requests to {endpoints:?}"));
        tokio::spawn(self.clone().monitor());
        loop {
            match listener.accept().await {
                Ok((conn, _)) => {
                    let _ = conn.set_nodelay(true);
                    tokio::spawn(self.clone().serve(conn));
                }
                Err(e) => {
                    crate::log(&format!("gateway: accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// Splices `client` to the first active endpoint that takes the connection.
    async fn serve(self, mut client: TcpStream) {
        let mut upstream = None;
        while let Some(addr) = self.pick() {
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr)).await {
                Ok(Ok(conn)) => {
                    upstream = Some(conn);
                    break;
                }
                Ok(Err(e)) => self.deactivate(&addr, &e.to_string()),
                Err(_) => self.deactivate(&addr, "i/o timeout"),
            }
        }
        let Some(mut upstream) = upstream else { return };
        let _ = upstream.set_nodelay(true);
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    }

    fn deactivate(&self, addr: &str, why: &str) {
        self.set_active(addr, false);
        crate::log(&format!(
            "deactivated endpoint [{addr}] due to {why} for {:?}",
            self.retry_delay
        ));
    }

    /// Every retry delay, tries the inactive endpoints again.
    async fn monitor(self) {
        loop {
            tokio::time::sleep(self.retry_delay).await;
            let inactive: Vec<String> = {
                let guard = self.remotes.lock().unwrap_or_else(PoisonError::into_inner);
                guard
                    .0
                    .iter()
                    .filter(|r| !r.active)
                    .map(|r| r.addr.clone())
                    .collect()
            };
            for addr in inactive {
                match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr)).await {
                    Ok(Ok(_)) => {
                        self.set_active(&addr, true);
                        crate::log(&format!("activated {addr}"));
                    }
                    _ => crate::log(&format!(
                        "failed to activate endpoint [{addr}] (stay inactive for another {:?})",
                        self.retry_delay
                    )),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_skips_inactive_endpoints() {
        let p = TcpProxy::new(
            &["a:1".into(), "b:2".into(), "c:3".into()],
            Duration::from_secs(1),
        );
        assert_eq!(p.pick().as_deref(), Some("a:1"));
        assert_eq!(p.pick().as_deref(), Some("b:2"));
        p.set_active("c:3", false);
        assert_eq!(p.pick().as_deref(), Some("a:1"));
        p.set_active("a:1", false);
        p.set_active("b:2", false);
        assert_eq!(p.pick(), None);
    }
}
