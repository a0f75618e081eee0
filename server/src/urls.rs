//! URL checks shared by the server configuration and detcdctl, with the messages of etcd's
//! `types.NewURLs` (`client/pkg/types/urls.go`).

/// A peer or client URL as etcd accepts it: `http`, `https`, `unix` or `unixs` with
/// `host:port` and no path. For the unix schemes `host:port` is the socket's file name
/// (`unix://localhost:2379` listens on the file `localhost:2379`), as in etcd.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Url {
    pub scheme: String,
    /// `host:port` (the socket's file name for unix schemes).
    pub host: String,
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)
    }
}

/// Parses one URL with etcd's rules and error texts.
pub fn parse_url(input: &str) -> Result<Url, String> {
    let s = input.trim();
    let (scheme, rest) = match s.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => return Err(format!("URL scheme must be http, https, unix, or unixs: {s}")),
    };
    match scheme.as_str() {
        "http" | "https" | "unix" | "unixs" => {
            let (host, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            };
            if !has_host_port(host) {
                return Err(format!("URL address does not have the form \"host:port\": {s}"));
            }
            if !path.is_empty() {
                return Err(format!("URL must not contain a path: {s}"));
            }
            Ok(Url {
                scheme,
                host: host.to_string(),
            })
        }
        _ => Err(format!("URL scheme must be http, https, unix, or unixs: {s}")),
    }
}

/// Go's `net.SplitHostPort` succeeding: `host:port` or `[v6]:port`, port possibly empty.
fn has_host_port(host: &str) -> bool {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').is_some_and(|(_, p)| p.starts_with(':'));
    }
    host.matches(':').count() == 1
}

/// A comma-separated list of URLs, sorted as `types.NewURLs` sorts them.
pub fn parse_urls(list: &str) -> Result<Vec<Url>, String> {
    let parts: Vec<&str> = list.split(',').filter(|s| !s.trim().is_empty()).collect();
    if parts.is_empty() {
        return Err("no valid URLs given".to_string());
    }
    let mut urls = parts.into_iter().map(parse_url).collect::<Result<Vec<_>, _>>()?;
    urls.sort_by_key(|u| u.to_string());
    Ok(urls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_url_rules() {
        assert_eq!(
            parse_url("http://127.0.0.1:2380").unwrap().to_string(),
            "http://127.0.0.1:2380"
        );
        assert_eq!(
            parse_url("foo").unwrap_err(),
            "URL scheme must be http, https, unix, or unixs: foo"
        );
        assert_eq!(
            parse_url("foo://x").unwrap_err(),
            "URL scheme must be http, https, unix, or unixs: foo://x"
        );
        assert_eq!(
            parse_url("http://localhost").unwrap_err(),
            "URL address does not have the form \"host:port\": http://localhost"
        );
        assert_eq!(
            parse_url("http://a:1/x").unwrap_err(),
            "URL must not contain a path: http://a:1/x"
        );
        assert!(parse_url("http://[::1]:2380").is_ok());
        // etcd's unix URLs take the same host:port form: the socket file's name.
        assert_eq!(
            parse_url("unixs://localhost:2380").unwrap().host,
            "localhost:2380"
        );
        assert_eq!(
            parse_url("unix:///tmp/etcd.sock").unwrap_err(),
            "URL address does not have the form \"host:port\": unix:///tmp/etcd.sock"
        );
        let l = parse_urls("http://b:1,http://a:1").unwrap();
        assert_eq!(l[0].host, "a:1");
    }
}
