//! detcd-tests: end-to-end tests that run real binaries on loopback ports, third-party
//! clients, and quorum-loss and crash scenarios. Filled as the server takes shape.
