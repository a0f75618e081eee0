//! The bootstrap flags (static, DNS SRV, discovery URL, v3 discovery) from flags,
//! `ETCD_*` variables and the YAML file, and etcd's refusals of their combinations.

use std::time::Duration;

use super::*;

fn load_with(args: &[&str], env: &[(&str, &str)], yaml: Option<&'static str>) -> Result<Config, ConfigError> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let read = |_: &str| yaml.map(str::to_string).ok_or_else(|| "no file".to_string());
    match Config::load(&args, &env, &read)? {
        Invocation::Run(c) => Ok(*c),
        other => panic!("unexpected {other:?}"),
    }
}

fn load(args: &[&str]) -> Result<Config, ConfigError> {
    load_with(args, &[], None)
}

#[test]
fn static_is_the_default_and_keeps_initial_cluster() {
    let c = load(&[]).unwrap();
    assert_eq!(c.bootstrap, Bootstrap::Static);
    assert_eq!(c.initial_cluster_string(), "default=http://localhost:2380");
}

#[test]
fn discovery_srv_clears_the_default_initial_cluster() {
    let c = load(&["--discovery-srv", "example.com", "--discovery-srv-name", "blue"]).unwrap();
    assert_eq!(
        c.bootstrap,
        Bootstrap::Srv(SrvDiscovery {
            domain: "example.com".into(),
            service_name: "blue".into()
        })
    );
    assert!(c.initial_cluster.is_empty());
    // From the environment and from the YAML file too.
    let c = load_with(&[], &[("ETCD_DISCOVERY_SRV", "example.org")], None).unwrap();
    assert!(matches!(c.bootstrap, Bootstrap::Srv(ref s) if s.domain == "example.org"));
    let c = load_with(
        &["--config-file", "f.yml"],
        &[],
        Some("discovery-srv: example.net\n"),
    )
    .unwrap();
    assert!(matches!(c.bootstrap, Bootstrap::Srv(ref s) if s.domain == "example.net"));
    // A flag and its variable both set: etcd's error.
    let e = load_with(&["--discovery-srv", "a"], &[("ETCD_DISCOVERY_SRV", "b")], None)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("conflicting environment variable \"ETCD_DISCOVERY_SRV\""),
        "{e}"
    );
}

#[test]
fn discovery_url_and_v3_settings() {
    let c = load(&[
        "--discovery",
        "https://discovery.etcd.io/abc",
        "--discovery-proxy",
        "proxy:3128",
    ])
    .unwrap();
    assert_eq!(
        c.bootstrap,
        Bootstrap::V2(V2Discovery {
            url: "https://discovery.etcd.io/abc".into(),
            proxy: "proxy:3128".into()
        })
    );
    let c = load_with(
        &[],
        &[
            (
                "ETCD_DISCOVERY_ENDPOINTS",
                "http://a:2379,http://b:2379,http://a:2379",
            ),
            ("ETCD_DISCOVERY_TOKEN", "tok"),
            ("ETCD_DISCOVERY_DIAL_TIMEOUT", "3s"),
            ("ETCD_DISCOVERY_USER", "root"),
            ("ETCD_DISCOVERY_PASSWORD", "pw"),
        ],
        None,
    )
    .unwrap();
    let Bootstrap::V3(v3) = c.bootstrap else {
        panic!("{:?}", c.bootstrap)
    };
    assert_eq!(v3.endpoints, vec!["http://a:2379", "http://b:2379"]);
    assert_eq!(v3.token, "tok");
    assert_eq!(v3.dial_timeout, Duration::from_secs(3));
    assert_eq!(v3.request_timeout, Duration::from_secs(5));
    assert_eq!(v3.keepalive_time, Duration::from_secs(2));
    assert_eq!(v3.keepalive_timeout, Duration::from_secs(6));
    assert!(v3.insecure_transport);
    assert!(!v3.insecure_skip_tls_verify);
    assert_eq!((v3.user.as_str(), v3.password.as_str()), ("root", "pw"));
    assert!(c.initial_cluster.is_empty());
    let c = load_with(
        &["--config-file", "f.yml"],
        &[],
        Some("discovery-endpoints: http://a:2379\ndiscovery-token: t\ndiscovery-request-timeout: 9s\n"),
    )
    .unwrap();
    assert!(matches!(c.bootstrap, Bootstrap::V3(ref v) if v.request_timeout == Duration::from_secs(9)));
}

#[test]
fn conflicting_bootstrap_flags_are_refused_with_etcds_messages() {
    let err = |args: &[&str]| load(args).unwrap_err().to_string();
    for args in [
        &[
            "--discovery-srv",
            "x.com",
            "--initial-cluster",
            "default=http://localhost:2380",
        ][..],
        &["--discovery", "http://d/x", "--discovery-srv", "x.com"][..],
        &[
            "--discovery",
            "http://d/x",
            "--discovery-endpoints",
            "http://a:2379",
            "--discovery-token",
            "t",
        ][..],
        &[
            "--discovery-endpoints",
            "http://a:2379",
            "--discovery-token",
            "t",
            "--initial-cluster",
            "default=http://localhost:2380",
        ][..],
    ] {
        assert_eq!(err(args), CONFLICT_BOOTSTRAP_FLAGS, "{args:?}");
    }
    assert_eq!(
        err(&["--discovery", "http://d/x", "--discovery-proxy", "p:1", "--discovery-token", "t"]),
        "both v2 discovery settings (discovery, discovery-proxy) and v3 discovery settings (discovery-token, discovery-endpoints, discovery-cert, discovery-key, discovery-cacert, discovery-user, discovery-password) are set"
    );
    assert_eq!(
        err(&["--discovery-endpoints", "http://a:2379"]),
        "token for discovery cannot be empty"
    );
    assert!(err(&[
        "--discovery-endpoints",
        "http://a:2379",
        "--discovery-token",
        "t",
        "--discovery-fallback",
        "proxy"
    ])
    .starts_with("v2 proxy is deprecated, and --discovery-fallback can't be configured as \"proxy\""));
    use crate::config::Fallback;
    let fallback = |args: &[&str]| load(args).unwrap().discovery_fallback;
    // etcd 3.4's default for a v2 discovery URL is the proxy; v3 discovery's is exit.
    assert_eq!(fallback(&["--discovery", "http://d/x"]), Fallback::Proxy);
    assert_eq!(
        fallback(&["--discovery", "http://d/x", "--discovery-fallback", "proxy"]),
        Fallback::Proxy
    );
    assert_eq!(
        fallback(&["--discovery", "http://d/x", "--discovery-fallback", "exit"]),
        Fallback::Exit
    );
    assert_eq!(
        fallback(&["--discovery-endpoints", "http://a:2379", "--discovery-token", "t"]),
        Fallback::Exit
    );
}

#[test]
fn etcd_3_6_discovery_config_section_in_yaml() {
    let yaml = "discovery-config:\n  token: tok\n  client:\n    endpoints: [http://a:2379, http://b:2379]\n    dial-timeout: 3000000000\n    secure:\n      insecure-skip-tls-verify: true\n      cacert: /ca.pem\n    auth:\n      username: root\n      password: pw\n";
    let c = load_with(&["--config-file", "f.yml"], &[], Some(yaml)).unwrap();
    let Bootstrap::V3(v3) = c.bootstrap else {
        panic!("{:?}", c.bootstrap)
    };
    assert_eq!(v3.token, "tok");
    assert_eq!(v3.endpoints, vec!["http://a:2379", "http://b:2379"]);
    assert_eq!(v3.dial_timeout, Duration::from_secs(3));
    assert!(v3.insecure_skip_tls_verify);
    assert_eq!(v3.cacert, "/ca.pem");
    assert_eq!((v3.user.as_str(), v3.password.as_str()), ("root", "pw"));
    let e = load_with(
        &["--config-file", "f.yml"],
        &[],
        Some("discovery-config:\n  client:\n    odd: 1\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("unknown key \"discovery-config.client.odd\""), "{e}");
}
