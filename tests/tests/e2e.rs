//! End-to-end tests: real `detcd` processes on loopback ports (see the crate docs).

mod e2e {
    pub mod harness;

    mod auth;
    mod cluster_metrics;
    mod corruption;
    mod crash;
    mod etcdctl;
    mod failover;
    mod kubeadm;
    mod learner;
    mod operations;
    mod python_client;
    mod removed;
    mod rpcs;
    mod startup;
    mod tls;
    mod tls_auth;
    mod tls_checks;
    mod tls_peers;
    mod unix_sockets;
}
