//! Delegation: how one organization's gate lets another's agents use a chosen slice of its tools.
//!
//! Owns: PASETO `v4.public`
//! ([`paseto`]), public keys written as PASERK `k4.public` ([`paserk`]), the delegation token on
//! top of them ([`token`]: claims, signing, the stateless checks), the
//! replay cache ([`replay`]) and per-delegator rate limits ([`rate`]).
//! Never: does I/O (keys, partners and HTTP belong to the store and the API); logs or returns a
//! token's precise rejection to the caller (it goes to the gate's log; the agent sees a class).

pub mod paserk;
pub mod paseto;
pub mod rate;
pub mod replay;
pub mod token;
