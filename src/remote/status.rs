//! What an HTTP answer without a JSON-RPC message means to whoever runs a remote connection, in
//! words that say what to do.
//!
//! Owns: [`failure_message`], the message of the JSON-RPC error the bridge answers a request with
//! when the server answered it with an error status (or a success without a JSON-RPC answer), and
//! [`not_json_rpc`] for a success status whose body is something else.
//! Never: includes what the server sent or any header value (a server may echo the credentials
//! it refused); the words are the gate's own. Reads no clock and touches no socket.

use crate::http::wire::reason_phrase;

/// `remote answered HTTP 401 Unauthorized: <what to do>` for an error status.
pub(crate) fn failure_message(status: u16) -> String {
    format!(
        "remote answered {}: {}",
        status_name(status),
        advice(status)
    )
}

/// The message for a success status whose body is not a JSON-RPC answer.
pub(crate) fn not_json_rpc(status: u16) -> String {
    format!(
        "remote answered {} with a body that is not JSON-RPC: check that the connection's url is \
         the server's MCP endpoint",
        status_name(status)
    )
}

/// `HTTP 404 Not Found`, or `HTTP 599` for a status without a known reason phrase.
fn status_name(status: u16) -> String {
    match reason_phrase(status) {
        "Unknown" => format!("HTTP {status}"),
        reason => format!("HTTP {status} {reason}"),
    }
}

/// What the person who configured the connection can do about `status`.
fn advice(status: u16) -> &'static str {
    match status {
        401 | 403 => {
            "the server refused the credentials: set the connection's headers (e.g. Authorization)"
        }
        404 => "no MCP endpoint at this URL: check the connection's url (often ending in /mcp)",
        405 | 406 | 415 => {
            "the URL does not take MCP requests over Streamable HTTP: check the connection's url"
        }
        408 | 429 => "the server is busy or limits the rate of requests: try again later",
        300..=399 => {
            "a redirect, which the bridge does not follow: set the connection's url to the address \
             it points to"
        }
        500..=599 => "the server (or a proxy in front of it) failed: its own logs say why",
        _ => "the server refused the request",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_say_what_to_do() {
        let refused = failure_message(401);
        assert!(refused.starts_with("remote answered HTTP 401 Unauthorized: "));
        assert!(refused.contains("set the connection's headers (e.g. Authorization)"));
        assert!(failure_message(403).contains("HTTP 403 Forbidden: the server refused"));
        assert!(failure_message(404).contains("check the connection's url"));
        assert!(failure_message(502).starts_with("remote answered HTTP 502: the server"));
        assert!(failure_message(503).contains("HTTP 503 Service Unavailable"));
        assert!(failure_message(302).contains("does not follow"));
        assert!(not_json_rpc(200).contains("HTTP 200 OK with a body that is not JSON-RPC"));
    }
}
