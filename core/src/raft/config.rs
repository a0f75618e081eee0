//! The bounds of one raft node, each named with its unit last and checked together.

use super::errors::ConfigError;

/// Everything a node needs to know about itself that is not replicated state.
///
/// Every limit has a unit suffix (`_ticks`, `_msgs`, `_bytes`) and a `_max` where it
/// is an upper bound. `validate` checks the relations between them; `RawNode::new`
/// refuses an invalid config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This node's id; never 0.
    pub id: u64,
    /// Base election timeout. A follower's actual timeout is drawn uniformly from
    /// `[election_ticks, 2 * election_ticks)` after each reset, from the node's own
    /// seeded PRNG, so split votes resolve and the draw replays from the seed.
    pub election_ticks: u64,
    /// Ticks between leader heartbeats; must be below `election_ticks`.
    pub heartbeat_ticks: u64,
    /// Campaign with a PreVote round first (Raft thesis 9.6) so a partitioned node
    /// that rejoins cannot force the cluster into a new term.
    pub pre_vote: bool,
    /// A leader that did not hear from a quorum within an election timeout steps
    /// down, and followers that hear from a live leader ignore vote requests.
    pub check_quorum: bool,
    /// Append messages in flight to one follower in replicate state.
    pub inflight_msgs_max: usize,
    /// Entry payload bytes in flight to one follower; 0 means no byte limit.
    pub inflight_bytes_max: u64,
    /// Entry bytes in one append message (at least one entry is always sent so that
    /// a single large entry still makes progress).
    pub append_bytes_max: u64,
    /// Payload bytes the leader accepts into its log before they commit; 0 means no
    /// limit. A single proposal is accepted whenever nothing is uncommitted.
    pub uncommitted_bytes_max: u64,
    /// Seed of this node's PRNG (election jitter).
    pub seed: u64,
}

impl Config {
    /// A config with etcd's usual ratios: election 10 ticks, heartbeat 1 tick,
    /// PreVote and CheckQuorum on, 256 inflight appends of up to 1 MiB each.
    pub fn new(id: u64) -> Config {
        Config {
            id,
            election_ticks: 10,
            heartbeat_ticks: 1,
            pre_vote: true,
            check_quorum: true,
            inflight_msgs_max: 256,
            inflight_bytes_max: 0,
            append_bytes_max: 1024 * 1024,
            uncommitted_bytes_max: 0,
            seed: id,
        }
    }

    /// Checks each bound and the relations between them.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == 0 {
            return Err(ConfigError::ZeroId);
        }
        if self.heartbeat_ticks == 0 {
            return Err(ConfigError::HeartbeatTicksZero);
        }
        if self.election_ticks <= self.heartbeat_ticks {
            return Err(ConfigError::ElectionNotAboveHeartbeat {
                election_ticks: self.election_ticks,
                heartbeat_ticks: self.heartbeat_ticks,
            });
        }
        if self.inflight_msgs_max == 0 {
            return Err(ConfigError::InflightMsgsZero);
        }
        if self.append_bytes_max == 0 {
            return Err(ConfigError::AppendBytesZero);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_each_bound_is_checked() {
        assert_eq!(Config::new(1).validate(), Ok(()));
        assert_eq!(
            Config {
                id: 0,
                ..Config::new(1)
            }
            .validate(),
            Err(ConfigError::ZeroId)
        );
        assert!(Config {
            heartbeat_ticks: 10,
            ..Config::new(1)
        }
        .validate()
        .is_err());
        assert!(Config {
            heartbeat_ticks: 0,
            ..Config::new(1)
        }
        .validate()
        .is_err());
        assert!(Config {
            inflight_msgs_max: 0,
            ..Config::new(1)
        }
        .validate()
        .is_err());
        assert!(Config {
            append_bytes_max: 0,
            ..Config::new(1)
        }
        .validate()
        .is_err());
    }
}
