//! Authentication and role-based access control (etcd's `server/auth`): the
//! replicated [`AuthStore`] of users, roles and permissions, the permission
//! arithmetic over key ranges ([`perms`]), and the member-local table of simple
//! tokens ([`SimpleTokens`]).
//!
//! What stays outside core, because it is slow or needs randomness: bcrypt
//! hashing and comparison, the random part of a simple token, JWT signing and
//! verification. Their results enter as request data, so passwords never reach
//! the WAL or a snapshot in clear.

pub mod perms;
mod store;
mod tokens;

pub use store::{AuthInfo, AuthStore, PasswordCheck, ROOT_ROLE, ROOT_USER};
pub use tokens::{SimpleTokens, TOKENS_MAX_DEFAULT, TOKEN_TTL_MS_DEFAULT};

#[cfg(test)]
mod tests;
