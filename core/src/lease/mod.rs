//! The lessor: grant, revoke, keepalive and expiry of leases, with time as a parameter.
