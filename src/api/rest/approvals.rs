//! `/approvals`: calls a policy escalated, waiting for a person.
//!
//! Owns: listing the approvals and deciding one (approve: the held call goes on exactly as sent;
//! deny: it is refused).
//! Never: decides an approval twice (a decided one answers 409); never holds a call itself
//! (`crate::approvals` does).

use super::common::Answer;
use crate::api::http::ApiError;
use crate::api::Api;
use crate::approvals::ApprovalError;
use serde_json::json;

/// `GET /approvals`.
pub(super) fn list(api: &Api) -> Answer {
    Ok((200, json!({ "approvals": api.approvals.list() })))
}

/// `POST /approvals/{id}/approve` (`approve` true) or `…/deny`: approves (the held call goes on,
/// exactly as sent) or denies a waiting call.
pub(super) fn decide(api: &Api, id: &str, approve: bool) -> Answer {
    match api.approvals.decide(id, approve) {
        Ok(approval) => Ok((200, json!(approval))),
        Err(ApprovalError::NotFound | ApprovalError::Full) => {
            Err(ApiError::not_found(format!("no approval {id}")))
        }
        Err(ApprovalError::NotPending(status)) => Err(ApiError::new(
            409,
            "conflict",
            format!("approval {id} is {status:?} already"),
        )),
    }
}
