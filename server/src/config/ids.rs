//! Member and cluster IDs derived as etcd derives them, and `--initial-cluster`.

use std::collections::BTreeMap;

use sha1::Digest as _;

use super::ConfigError;
use crate::urls::Url;

/// etcd's `computeMemberID` for a bootstrapping member: the first 8 bytes (big-endian) of
/// SHA-1 over the sorted peer URLs concatenated, followed by the cluster token.
pub fn member_id(peer_urls: &[Url], token: &str) -> u64 {
    let mut urls: Vec<String> = peer_urls.iter().map(Url::to_string).collect();
    urls.sort();
    let mut bytes = urls.concat().into_bytes();
    bytes.extend_from_slice(token.as_bytes());
    first_u64(&sha1::Sha1::digest(&bytes).into())
}

/// etcd's `RaftCluster.genID`: SHA-1 over the sorted member IDs as big-endian u64s.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_be_bytes()).collect();
    first_u64(&sha1::Sha1::digest(&bytes).into())
}

fn first_u64(digest: &[u8; 20]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(b)
}

/// `name=url,name=url,...` into name -> sorted URLs (etcd's `types.NewURLsMap`).
pub fn parse_initial_cluster(s: &str) -> Result<BTreeMap<String, Vec<Url>>, ConfigError> {
    let mut map: BTreeMap<String, Vec<Url>> = BTreeMap::new();
    for pair in s.split(',').filter(|p| !p.is_empty()) {
        let (name, url) = pair.split_once('=').ok_or_else(|| {
            ConfigError::Invalid(format!("--initial-cluster: {pair:?} is not of the form name=url"))
        })?;
        let url = crate::urls::parse_url(url)
            .map_err(|e| ConfigError::Invalid(format!("--initial-cluster: {e}")))?;
        map.entry(name.to_string()).or_default().push(url);
    }
    for urls in map.values_mut() {
        urls.sort_by_key(|u| u.to_string());
    }
    Ok(map)
}
