//! A partner gate's side of delegation, for the tests of inbound delegated calls: org A's
//! registration at gate B (`partner`), its signing of one token per request (`OrgA`), and a
//! delegated `POST` to B's workspace `ws-1`.
//! Never: reuses a token id (each token is signed afresh); signs with a key the test did not
//! make from a seed.

use super::http::Response;
use super::{call_request, Serve};
use aegis_gate::delegation::paserk;
use aegis_gate::delegation::token::{self, Grant};
use aegis_gate::glob::Scope;
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};

/// The public key (PASERK `k4.public`) of the key made from `seed`.
pub fn partner_key(seed: u8) -> String {
    paserk::encode(&SigningKey::from_bytes(&[seed; 32]).verifying_key())
}

/// The registration of partner `org` (key `kid` from `seed`) for workspace `ws-1`:
/// `ex.echo` and `ex.get_*` allowed, `ex.get_env` denied, 60 calls a minute in bursts of 5.
pub fn partner(org: &str, kid: &str, seed: u8) -> Value {
    json!({
        "org_id": org,
        "keys": [{"kid": kid, "public_key": partner_key(seed)}],
        "workspace_id": "ws-1",
        "allow": ["ex.echo", "ex.get_*"],
        "deny": ["ex.get_env"],
        "rate": {"per_minute": 60, "burst": 5}
    })
}

/// Org A's side: signs each request as org A's gate would.
pub struct OrgA {
    pub key: SigningKey,
    pub kid: &'static str,
}

impl OrgA {
    /// Org A with the key of [`partner`]`("org-a", "a1", 4)`.
    pub fn new() -> OrgA {
        OrgA {
            key: SigningKey::from_bytes(&[4; 32]),
            kid: "a1",
        }
    }

    /// A token of agent `agent-7` for gate `aud`, within `scope`, naming `tool`, bound to
    /// `body`, issued at `now` and valid for 120 s.
    pub fn token(&self, aud: &str, scope: &[&str], tool: &str, body: &str, now: i64) -> String {
        self.token_as("agent-7", aud, scope, tool, body, now)
    }

    /// The same for agent `sub`.
    pub fn token_as(
        &self,
        sub: &str,
        aud: &str,
        scope: &[&str],
        tool: &str,
        body: &str,
        now: i64,
    ) -> String {
        let scope: Scope = serde_json::from_value(json!({ "allow": scope })).unwrap();
        let grant = Grant {
            iss: "org-a",
            aud,
            sub,
            scope: &scope,
        };
        token::sign(&self.key, self.kid, &grant, tool, body.as_bytes(), now, 120).unwrap()
    }
}

/// POSTs `body` to /mcp/ws-1 with `token` (and a session once there is one).
pub fn post(serve: &Serve, token: &str, session: Option<&str>, body: &str) -> Response {
    let mut headers = vec![("Aegis-Delegation", token)];
    if let Some(s) = session {
        headers.push(("Mcp-Session-Id", s));
    }
    serve.post_mcp("ws-1", &headers, body)
}

/// A `tools/call` of `tool` with arguments every example tool takes.
pub fn call_body(id: u64, tool: &str) -> String {
    call_request(id, tool, json!({"message": "hi", "a": 1, "b": 2})).to_string()
}
