//! The v2 workload's directory requests: what a client of `/v2/keys` (or etcdctl
//! with `ETCDCTL_API=2`) does to a tree, in the subtree [`DIR`] that the checker
//! of [`crate::check::v2_dir`] models as one partition. Directories made (`mkdir`,
//! `PUT dir=true`, also over a key), updated (`updatedir`), listed (recursive,
//! sorted quorum gets) and removed (`rmdir`, refused while not empty, and
//! recursive deletes); keys set, created, updated and deleted in them, made with
//! their missing parent directories; in-order keys POSTed into a queue directory;
//! and every request also on a path below a key (`c0` is a key or a directory by
//! turns, as is `c1`), which etcd refuses with "Not a directory". Directories
//! with a TTL (`mkdir --ttl`, `PUT dir=true ttl=`), their expiry set, refreshed or
//! removed (`updatedir`: `PUT dir=true prevExist=true`, with `refresh=true` or a
//! TTL or neither), and expiring at a leader's sync with everything below them;
//! `prevExist=false` and `prevExist=true` with `dir=true` on keys and directories
//! alike; hidden keys and directories (`_h`, read by their path, never listed).

use detcd_core::node::{PREV_EXIST_FALSE, PREV_EXIST_TRUE};
use detcd_core::rng::Rng;
use detcd_proto::detcdpb::V2Request;

use crate::check::v2_dir::{DirInput, DIR};
use crate::v2_workload::SYNC_INTERVAL_MS;

/// The queue directory most POSTs go to.
const QUEUE: &str = "/v2/d/q";

/// The paths the requests name: the subtree, keys or directories in it, a
/// directory two levels down and a key in it, paths below `c0` and `c1` (crossing
/// them while they are keys), the queue, and hidden nodes (one below a hidden
/// directory by turns).
const PATHS: [&str; 11] = [
    DIR,
    "/v2/d/c0",
    "/v2/d/c1",
    "/v2/d/s",
    "/v2/d/s/c0",
    "/v2/d/c0/x",
    "/v2/d/c1/x",
    QUEUE,
    "/v2/d/_h",
    "/v2/d/s/_h",
    "/v2/d/_h/c0",
];

/// An expiry a little ahead of `now_ms`: many pass between two requests.
fn expiry(rng: &mut Rng, now_ms: u64) -> u64 {
    now_ms + rng.range(100, 3 * SYNC_INTERVAL_MS)
}

fn pick<'a>(rng: &mut Rng, paths: &[&'a str]) -> &'a str {
    paths[rng.range(0, paths.len() as u64) as usize]
}

/// A request on the subtree at the member's Unix time `now_ms`, writing `value`
/// (unique to it), and the model's view of it.
pub fn request(rng: &mut Rng, value: String, now_ms: u64) -> (V2Request, DirInput) {
    let mut r = V2Request {
        method: "PUT".to_string(),
        path: pick(rng, &PATHS).to_string(),
        time_unix_ms: now_ms,
        ..V2Request::default()
    };
    let input = match rng.range(0, 100) {
        0..=13 => {
            r.val.clone_from(&value);
            DirInput::Set { value }
        }
        14..=17 => {
            r.dir = true;
            let ttl = rng.chance(1, 3);
            if ttl {
                r.expiration_unix_ms = expiry(rng, now_ms);
            }
            DirInput::SetDir { ttl }
        }
        18..=25 => {
            r.val.clone_from(&value);
            r.prev_exist = PREV_EXIST_FALSE;
            DirInput::Create { value }
        }
        26..=33 => {
            r.dir = true;
            r.prev_exist = PREV_EXIST_FALSE;
            let ttl = rng.chance(1, 2);
            if ttl {
                r.expiration_unix_ms = expiry(rng, now_ms);
            }
            DirInput::Mkdir { ttl }
        }
        34..=37 => {
            // etcdctl updatedir [--ttl], or a refresh of the TTL.
            r.dir = true;
            r.prev_exist = PREV_EXIST_TRUE;
            let ttl = rng.chance(2, 3);
            let refresh = ttl && rng.chance(1, 2);
            if ttl {
                r.expiration_unix_ms = expiry(rng, now_ms);
            }
            r.refresh = refresh;
            DirInput::UpdateDir { ttl, refresh }
        }
        38..=43 => {
            // An empty value updates a directory (etcdctl updatedir); on a key it is
            // a value like any other.
            let value = if rng.chance(1, 3) { String::new() } else { value };
            r.val.clone_from(&value);
            r.prev_exist = PREV_EXIST_TRUE;
            DirInput::Update { value }
        }
        44..=55 => {
            if rng.chance(3, 4) {
                r.path = QUEUE.to_string();
            }
            r.method = "POST".to_string();
            r.val.clone_from(&value);
            DirInput::Post { value }
        }
        56..=65 => {
            r.method = "DELETE".to_string();
            DirInput::Delete
        }
        66..=75 => {
            r.method = "DELETE".to_string();
            r.dir = true;
            DirInput::Rmdir
        }
        76..=83 => {
            // Mostly the subtree or the queue, which POSTs keep filling.
            if rng.chance(1, 2) {
                r.path = pick(rng, &[DIR, QUEUE]).to_string();
            }
            r.method = "DELETE".to_string();
            r.recursive = true;
            DirInput::DeleteAll
        }
        _ => {
            let recursive = !rng.chance(1, 4);
            r.method = "QGET".to_string();
            r.recursive = recursive;
            r.sorted = true;
            DirInput::Get { recursive }
        }
    };
    (r, input)
}
