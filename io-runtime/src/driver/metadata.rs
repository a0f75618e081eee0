//! The WAL metadata of a member's data directory: who wrote it (member and cluster
//! ID) and the members it founded its cluster with; on restart it, not the flags,
//! decides who the member is (as etcd's restart).

use detcd_proto::etcdserverpb::{Member as MemberInfo, MemberListResponse};
use prost::Message;

use super::MemberOptions;

/// WAL metadata of a member's data directory: member ID and cluster ID, 8 bytes
/// each, little-endian (etcd writes `etcdserverpb.Metadata{NodeID, ClusterID}`).
pub fn encode_metadata(member_id: u64, cluster_id: u64) -> Vec<u8> {
    let mut bytes = member_id.to_le_bytes().to_vec();
    bytes.extend_from_slice(&cluster_id.to_le_bytes());
    bytes
}

/// [`encode_metadata`] followed by the founding members (a `MemberListResponse`
/// holding only `members`): until the first application snapshot, the membership
/// of the bootstrap snapshot is theirs, and a restart with other flags must not
/// change it (etcd keeps it in its store).
/// Every WAL segment starts with the metadata, so members whose encoding is larger
/// than [`FOUNDING_MEMBERS_BYTES_MAX`] are left out (a restart then takes them from
/// the flags).
pub(super) fn encode_founding_metadata(member_id: u64, cluster_id: u64, members: &[MemberInfo]) -> Vec<u8> {
    let mut bytes = encode_metadata(member_id, cluster_id);
    let list = MemberListResponse {
        members: members.to_vec(),
        ..MemberListResponse::default()
    };
    let encoded = list.encode_to_vec();
    if encoded.len() <= FOUNDING_MEMBERS_BYTES_MAX {
        bytes.extend_from_slice(&encoded);
    }
    bytes
}

/// The most bytes of founding members a WAL's metadata records (well under the
/// smallest segment, 4 KiB, which also holds the CRC and hard-state records).
const FOUNDING_MEMBERS_BYTES_MAX: usize = 2048;

/// The founding members recorded after the IDs, if any (older directories, and
/// the ones `snapshot restore` writes, have none).
fn decode_founding_members(bytes: &[u8]) -> Option<Vec<MemberInfo>> {
    let rest = bytes.get(16..).filter(|r| !r.is_empty())?;
    MemberListResponse::decode(rest).ok().map(|l| l.members)
}

/// As etcd's restart, a data directory's WAL metadata decides who the member is:
/// its IDs (and founding members) replace the ones derived from the flags, with a
/// warning when they differ.
pub(super) fn adopt_recorded_identity(options: &mut MemberOptions, metadata: &[u8]) {
    let Some((member_id, cluster_id)) = decode_metadata(metadata) else {
        return;
    };
    let node = &mut options.node;
    if (member_id, cluster_id) != (node.member_id, node.cluster_id) {
        crate::log!(
            crate::log::Level::Warn,
            "driver",
            "data directory {} belongs to member {member_id:x} of cluster {cluster_id:x}; \
             ignoring member {:x} of cluster {:x} derived from the initial cluster flags",
            options.data_dir.display(),
            node.member_id,
            node.cluster_id
        );
        node.member_id = member_id;
        node.cluster_id = cluster_id;
    }
    if let Some(members) = decode_founding_members(metadata) {
        if members != node.initial_members {
            options.peers = members.iter().map(|m| (m.id, m.peer_ur_ls.clone())).collect();
            node.initial_members = members;
        }
    }
}

fn decode_metadata(bytes: &[u8]) -> Option<(u64, u64)> {
    let member = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let cluster = u64::from_le_bytes(bytes.get(8..16)?.try_into().ok()?);
    Some((member, cluster))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, url: &str) -> MemberInfo {
        MemberInfo {
            id,
            name: format!("m{id}"),
            peer_ur_ls: vec![url.to_string()],
            ..MemberInfo::default()
        }
    }

    #[test]
    fn founding_members_follow_the_ids_and_too_many_are_left_out() {
        let members = vec![member(1, "http://a:2380"), member(2, "http://b:2380")];
        let bytes = encode_founding_metadata(7, 9, &members);
        assert_eq!(decode_metadata(&bytes), Some((7, 9)));
        assert_eq!(decode_founding_members(&bytes), Some(members));

        let many: Vec<MemberInfo> = (1..=100).map(|id| member(id, "http://some-host:2380")).collect();
        let bytes = encode_founding_metadata(7, 9, &many);
        assert_eq!(bytes, encode_metadata(7, 9));
        assert_eq!(decode_founding_members(&bytes), None);
        assert_eq!(decode_metadata(&bytes[..15]), None);
    }
}
