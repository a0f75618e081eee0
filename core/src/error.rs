//! Errors that clients and peers can cause, as typed values carrying etcd's gRPC
//! status code and message word for word (etcd's `api/v3rpc/rpctypes`).
//!
//! Clients match on the message text, so every message here is exactly etcd's.
//! A state machine that returns one of these has left its state untouched.

use std::fmt;

/// gRPC status codes, numbered as gRPC numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Code {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

/// One of etcd's client-visible errors: a gRPC code and etcd's exact message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EtcdError {
    pub code: Code,
    pub message: &'static str,
}

impl fmt::Display for EtcdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message)
    }
}

impl std::error::Error for EtcdError {}

const fn err(code: Code, message: &'static str) -> EtcdError {
    EtcdError { code, message }
}

// InvalidArgument
pub const KEY_NOT_PROVIDED: EtcdError = err(Code::InvalidArgument, "etcdserver: key is not provided");
pub const KEY_NOT_FOUND: EtcdError = err(Code::InvalidArgument, "etcdserver: key not found");
pub const VALUE_PROVIDED: EtcdError = err(Code::InvalidArgument, "etcdserver: value is provided");
pub const LEASE_PROVIDED: EtcdError = err(Code::InvalidArgument, "etcdserver: lease is provided");
pub const TOO_MANY_OPS: EtcdError = err(
    Code::InvalidArgument,
    "etcdserver: too many operations in txn request",
);
pub const DUPLICATE_KEY: EtcdError = err(
    Code::InvalidArgument,
    "etcdserver: duplicate key given in txn request",
);
pub const INVALID_SORT_OPTION: EtcdError = err(Code::InvalidArgument, "etcdserver: invalid sort option");
pub const REQUEST_TOO_LARGE: EtcdError = err(Code::InvalidArgument, "etcdserver: request is too large");
pub const MEMBER_BAD_URLS: EtcdError =
    err(Code::InvalidArgument, "etcdserver: given member URLs are invalid");
pub const USER_EMPTY: EtcdError = err(Code::InvalidArgument, "etcdserver: user name is empty");
pub const ROLE_EMPTY: EtcdError = err(Code::InvalidArgument, "etcdserver: role name is empty");
pub const AUTH_FAILED: EtcdError = err(
    Code::InvalidArgument,
    "etcdserver: authentication failed, invalid user ID or password",
);
pub const PERMISSION_NOT_GIVEN: EtcdError = err(Code::InvalidArgument, "etcdserver: permission not given");
pub const INVALID_AUTH_MGMT: EtcdError = err(Code::InvalidArgument, "etcdserver: invalid auth management");
pub const AUTH_OLD_REVISION: EtcdError =
    err(Code::InvalidArgument, "etcdserver: revision of auth store is old");

// OutOfRange
pub const COMPACTED: EtcdError = err(
    Code::OutOfRange,
    "etcdserver: mvcc: required revision has been compacted",
);
pub const FUTURE_REV: EtcdError = err(
    Code::OutOfRange,
    "etcdserver: mvcc: required revision is a future revision",
);
pub const LEASE_TTL_TOO_LARGE: EtcdError = err(Code::OutOfRange, "etcdserver: too large lease TTL");

// ResourceExhausted
pub const NO_SPACE: EtcdError = err(
    Code::ResourceExhausted,
    "etcdserver: mvcc: database space exceeded",
);
pub const TOO_MANY_REQUESTS: EtcdError = err(Code::ResourceExhausted, "etcdserver: too many requests");

// NotFound
pub const LEASE_NOT_FOUND: EtcdError = err(Code::NotFound, "etcdserver: requested lease not found");
pub const MEMBER_NOT_FOUND: EtcdError = err(Code::NotFound, "etcdserver: member not found");

// FailedPrecondition
pub const LEASE_EXISTS: EtcdError = err(Code::FailedPrecondition, "etcdserver: lease already exists");
pub const MEMBER_EXISTS: EtcdError = err(Code::FailedPrecondition, "etcdserver: member ID already exist");
pub const PEER_URL_EXISTS: EtcdError = err(Code::FailedPrecondition, "etcdserver: Peer URLs already exists");
pub const NOT_ENOUGH_STARTED_MEMBERS: EtcdError = err(
    Code::FailedPrecondition,
    "etcdserver: re-configuration failed due to not enough started members",
);
pub const MEMBER_NOT_LEARNER: EtcdError = err(
    Code::FailedPrecondition,
    "etcdserver: can only promote a learner member",
);
pub const LEARNER_NOT_READY: EtcdError = err(
    Code::FailedPrecondition,
    "etcdserver: can only promote a learner member which is in sync with leader",
);
pub const TOO_MANY_LEARNERS: EtcdError = err(
    Code::FailedPrecondition,
    "etcdserver: too many learner members in cluster",
);
pub const CLUSTER_ID_MISMATCH: EtcdError = err(Code::FailedPrecondition, "etcdserver: cluster ID mismatch");
pub const NOT_LEADER: EtcdError = err(Code::FailedPrecondition, "etcdserver: not leader");
pub const NOT_CAPABLE: EtcdError = err(Code::FailedPrecondition, "etcdserver: not capable");
pub const LEARNER_RPC_NOT_SUPPORTED: EtcdError = err(
    Code::FailedPrecondition,
    "etcdserver: rpc not supported for learner",
);
pub const BAD_LEADER_TRANSFEREE: EtcdError =
    err(Code::FailedPrecondition, "etcdserver: bad leader transferee");

// Unavailable
pub const NO_LEADER: EtcdError = err(Code::Unavailable, "etcdserver: no leader");
pub const LEADER_CHANGED: EtcdError = err(Code::Unavailable, "etcdserver: leader changed");
pub const STOPPED: EtcdError = err(Code::Unavailable, "etcdserver: server stopped");
pub const TIMEOUT: EtcdError = err(Code::Unavailable, "etcdserver: request timed out");
pub const TIMEOUT_DUE_TO_LEADER_FAIL: EtcdError = err(
    Code::Unavailable,
    "etcdserver: request timed out, possibly due to previous leader failure",
);
pub const TIMEOUT_DUE_TO_CONNECTION_LOST: EtcdError = err(
    Code::Unavailable,
    "etcdserver: request timed out, possibly due to connection lost",
);
pub const TIMEOUT_WAIT_APPLIED_INDEX: EtcdError = err(
    Code::Unavailable,
    "etcdserver: request timed out, waiting for the applied index took too long",
);
pub const UNHEALTHY: EtcdError = err(Code::Unavailable, "etcdserver: unhealthy cluster");

// Auth: FailedPrecondition
pub const ROOT_USER_NOT_EXIST: EtcdError =
    err(Code::FailedPrecondition, "etcdserver: root user does not exist");
pub const ROOT_ROLE_NOT_EXIST: EtcdError = err(
    Code::FailedPrecondition,
    "etcdserver: root user does not have root role",
);
pub const USER_ALREADY_EXIST: EtcdError =
    err(Code::FailedPrecondition, "etcdserver: user name already exists");
pub const USER_NOT_FOUND: EtcdError = err(Code::FailedPrecondition, "etcdserver: user name not found");
pub const ROLE_ALREADY_EXIST: EtcdError =
    err(Code::FailedPrecondition, "etcdserver: role name already exists");
pub const ROLE_NOT_FOUND: EtcdError = err(Code::FailedPrecondition, "etcdserver: role name not found");
pub const ROLE_NOT_GRANTED: EtcdError = err(
    Code::FailedPrecondition,
    "etcdserver: role is not granted to the user",
);
pub const PERMISSION_NOT_GRANTED: EtcdError = err(
    Code::FailedPrecondition,
    "etcdserver: permission is not granted to the role",
);
pub const AUTH_NOT_ENABLED: EtcdError = err(
    Code::FailedPrecondition,
    "etcdserver: authentication is not enabled",
);

// PermissionDenied, Unauthenticated
pub const PERMISSION_DENIED: EtcdError = err(Code::PermissionDenied, "etcdserver: permission denied");
pub const INVALID_AUTH_TOKEN: EtcdError = err(Code::Unauthenticated, "etcdserver: invalid auth token");

// DataLoss, Cancelled
pub const CORRUPT: EtcdError = err(Code::DataLoss, "etcdserver: corrupt cluster");
pub const CANCELED: EtcdError = err(Code::Cancelled, "etcdserver: request canceled");
pub const WATCH_CANCELED: EtcdError = err(Code::Cancelled, "etcdserver: watch canceled");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_the_etcdserver_prefix_clients_match_on() {
        for e in [
            KEY_NOT_PROVIDED,
            COMPACTED,
            FUTURE_REV,
            LEASE_NOT_FOUND,
            NO_LEADER,
            NOT_LEADER,
        ] {
            assert!(e.message.starts_with("etcdserver: "), "{e}");
        }
        assert_eq!(COMPACTED.code as i32, 11);
        assert_eq!(NO_LEADER.code as i32, 14);
    }
}
