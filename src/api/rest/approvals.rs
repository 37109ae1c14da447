//! `/approvals`: calls a policy escalated, waiting for a person.
//!
//! Owns: listing the approvals, showing one, and deciding one (approve: the held call goes on
//! exactly as sent; deny: it is refused). Across replicas (`serve --store`), the list and a
//! lookup show the calls every replica holds (each record naming its `replica`), and a decision
//! for a call another replica holds is sent to that replica, which applies it (202, naming it).
//! Never: decides an approval twice (a decided one answers 409); never holds a call itself
//! (`crate::approvals` does); refuses a decision for a call held here because the shared store
//! does not answer (only a call held elsewhere needs it: 503 then).

use super::common::Answer;
use crate::api::http::ApiError;
use crate::api::Api;
use crate::approvals::shared::Remote;
use crate::approvals::{Approval, ApprovalError};
use serde_json::{json, Value};

/// `GET /approvals`: this replica's held and decided calls, then those other replicas hold.
pub(super) fn list(api: &Api) -> Answer {
    let replica = api.approvals.replica();
    let mut approvals: Vec<Value> = api
        .approvals
        .list()
        .iter()
        .map(|a| local(a, replica.as_deref()))
        .collect();
    let mut body = json!({});
    match api.approvals.remote_held() {
        None => {}
        Some(Ok(remote)) => approvals.extend(remote),
        Some(Err(e)) => {
            body["incomplete"] = json!(format!("only this replica's approvals are listed: {e}"));
        }
    }
    body["approvals"] = Value::Array(approvals);
    Ok((200, body))
}

/// `GET /approvals/{id}`: held or decided here, else held by another replica.
pub(super) fn get(api: &Api, id: &str) -> Answer {
    let replica = api.approvals.replica();
    if let Some(approval) = api.approvals.get(id) {
        return Ok((200, local(&approval, replica.as_deref())));
    }
    match api.approvals.remote_get(id) {
        None | Some(Ok(None)) => Err(ApiError::not_found(format!("no approval {id}"))),
        Some(Ok(Some(record))) => Ok((200, record)),
        Some(Err(e)) => Err(unreachable(id, &e)),
    }
}

/// `POST /approvals/{id}/approve` (`approve` true) or `…/deny`: approves (the held call goes on,
/// exactly as sent) or denies a waiting call, here or through the replica that holds it.
pub(super) fn decide(api: &Api, id: &str, approve: bool) -> Answer {
    let pending_here = api
        .approvals
        .get(id)
        .is_some_and(|a| a.status == crate::approvals::Status::Pending);
    if pending_here && !api.approvals.claim_local(id) {
        return Err(ApiError::new(
            409,
            "conflict",
            format!("approval {id} was decided through another replica already"),
        ));
    }
    match api.approvals.decide(id, approve) {
        Ok(approval) => {
            let replica = api.approvals.replica();
            Ok((200, local(&approval, replica.as_deref())))
        }
        Err(ApprovalError::NotFound | ApprovalError::Full) => decide_remote(api, id, approve),
        Err(ApprovalError::NotPending(status)) => Err(ApiError::new(
            409,
            "conflict",
            format!("approval {id} is {status:?} already"),
        )),
    }
}

/// A decision for a call this replica does not hold.
fn decide_remote(api: &Api, id: &str, approve: bool) -> Answer {
    match api.approvals.decide_remote(id, approve) {
        None | Some(Remote::NotFound) => Err(ApiError::not_found(format!("no approval {id}"))),
        Some(Remote::HandedOver(mut record)) => {
            let holder = record["replica"].as_str().unwrap_or_default().to_owned();
            record["decision"] = json!(if approve { "approve" } else { "deny" });
            record["message"] = json!(format!(
                "replica {holder} holds this call: the decision was sent to it, and it releases \
                 the call"
            ));
            Ok((202, record))
        }
        Some(Remote::Released(holder)) => Err(ApiError::new(
            409,
            "conflict",
            format!("approval {id} was released by replica {holder} (decided or expired) already"),
        )),
        Some(Remote::Unreachable(e)) => Err(unreachable(id, &e)),
    }
}

/// A record of this replica's, naming this replica when it shares its approvals.
fn local(approval: &Approval, replica: Option<&str>) -> Value {
    let mut value = json!(approval);
    if let Some(replica) = replica {
        value["replica"] = json!(replica);
    }
    value
}

fn unreachable(id: &str, reason: &str) -> ApiError {
    ApiError::new(
        503,
        "store_unavailable",
        format!(
            "approval {id} is not held by this replica, and the shared store does not answer to \
             find the replica that holds it ({reason}); calls held here can still be decided here"
        ),
    )
}
