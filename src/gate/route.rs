//! Routing an agent's request to the connection that serves it: calls (`tools/call`,
//! `prompts/get`, `resources/read`), which the policy decides on, and `completion/complete`.
//!
//! Owns: finding the target in the merger's published route table (a tool or a prompt by its
//! merged name, a resource by its URI, a completion by its `ref`), the policy's verdict on it
//! (decided once and written into the call's `VerdictSlot`), the rewriting of params for the
//! child (a tool's or prompt's name, a completion's `ref.name`; a URI is never rewritten;
//! `_meta` without what only the gate may say and without the agent's progress token, which the
//! connection maps), which of the child's requests the agent may be sent while the call is in
//! flight (what its session declared, less what the policy denies: a rule matching
//! `SERVER.@sampling`, `SERVER.@elicitation` or `SERVER.@roots` with a verdict other than
//! `allow`), and holding an escalated call for a person.
//! Never: waits on a child; forwards a call the policy denied or a blocked entry.

use super::{Gate, ToolCall};
use crate::approvals::{self, Approvals, Release, ReleaseFn};
use crate::downstream::{input, CallRequest, ConnHandle};
use crate::jsonrpc::{code, Id, Responder};
use crate::mcp::ClientCaps;
use crate::merger::Routes;
use crate::policy::{Facts, Policy, Verdict};
use crate::thread::read;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

type Params = BTreeMap<String, Box<RawValue>>;

/// What a call goes to, found in the route table.
struct Target {
    conn: ConnHandle,
    /// The name policies match: the merged tool or prompt name, or a resource's `server.name`.
    subject: String,
    /// The name on the server, which replaces `params.name`; `None` for a resource.
    downstream: Option<String>,
    blocked: Option<Arc<str>>,
    annotations: Option<Arc<Map<String, Value>>>,
    /// A tool's `x-mcp-header` properties.
    params: Option<Arc<[crate::sanitize::ParamHeader]>>,
}

impl Target {
    fn facts(&self) -> Facts<'_> {
        Facts {
            trusted: self.conn.trusted(),
            annotations: self.annotations.as_deref(),
        }
    }
}

/// The target of `name` (a URI for `resources/read`) for `method`.
fn target(routes: &Routes, method: &str, name: &str) -> Option<Target> {
    match method {
        "resources/read" => {
            let route = routes.resources().route(name)?;
            Some(Target {
                conn: route.conn.clone(),
                subject: route.subject.clone(),
                downstream: None,
                blocked: route.blocked.clone(),
                annotations: None,
                params: None,
            })
        }
        _ => {
            let route = if method == "prompts/get" {
                routes.prompt(name)
            } else {
                routes.get(name)
            }?;
            Some(Target {
                conn: route.conn.clone(),
                subject: name.to_owned(),
                downstream: Some(route.tool.clone()),
                blocked: route.blocked.clone(),
                annotations: route.annotations.clone(),
                params: route.params.clone(),
            })
        }
    }
}

/// The `Mcp-Param-*` headers of a call with `arguments`, for a tool's `x-mcp-header`
/// properties: `{"Region": "eu-1"}`, a present (non-null) argument each.
fn param_headers(
    params: &[crate::sanitize::ParamHeader],
    arguments: Option<&str>,
) -> Option<Box<RawValue>> {
    let arguments: Value = serde_json::from_str(arguments?).ok()?;
    let mut headers = Map::new();
    for param in params {
        let text = match arguments.get(&param.property)? {
            Value::String(s) => s.clone(),
            Value::Null => continue,
            other => other.to_string(),
        };
        headers.insert(param.header.clone(), Value::String(text));
    }
    if headers.is_empty() {
        return None;
    }
    serde_json::value::to_raw_value(&headers).ok()
}

/// What a method calls what it routes, in messages.
fn noun(method: &str) -> &'static str {
    match method {
        "prompts/get" => "prompt",
        "resources/read" => "resource",
        _ => "tool",
    }
}

impl Gate {
    /// Decides the policy's verdict on `call` once (recorded in its slot for the transport's
    /// audit record), then routes, holds or refuses it.
    pub(super) fn call(
        &self,
        responder: Responder,
        call: ToolCall,
        agent: Option<String>,
        client: ClientCaps,
    ) {
        let routes = self.merger.routes();
        let method = call.method();
        let target = target(&routes, method, call.tool());
        let subject = target
            .as_ref()
            .map_or_else(|| call.tool().to_owned(), |t| t.subject.clone());
        let facts = target.as_ref().map(Target::facts).unwrap_or_default();
        let policy = self.current_policy();
        let verdict = policy
            .decide_with(&subject, agent.as_deref(), facts)
            .verdict;
        call.decide(verdict);
        let (name, params) = match call.into_parts() {
            Ok(parts) => parts,
            Err(message) => return responder.error(code::INVALID_PARAMS, &message),
        };
        let shown: String = name.chars().take(200).collect();
        let Some(target) = target else {
            let message = format!("unknown {}: {shown:?}", noun(method));
            return responder.error(code::INVALID_PARAMS, &message);
        };
        if let Some(reason) = &target.blocked {
            let message = format!("{} {shown:?} is {reason}", noun(method));
            return responder.error(code::TOOL_BLOCKED, &message);
        }
        let mut params = params;
        if let Some(downstream) = &target.downstream {
            match serde_json::value::to_raw_value(downstream) {
                Ok(raw) => params.insert("name".into(), raw),
                Err(e) => return responder.error(code::INTERNAL_ERROR, &e.to_string()),
            };
        }
        // Only a tool with `x-mcp-header` properties needs its arguments read again.
        let headers = target
            .params
            .as_deref()
            .and_then(|p| param_headers(p, params.get("arguments").map(|a| a.get())));
        let mut req = match self.request(responder, method, params, &target.conn, agent, client) {
            Ok(req) => req,
            Err((responder, message)) => return responder.error(code::INVALID_PARAMS, &message),
        };
        if let Some(headers) = headers {
            // For a remote 2026-07-28 server's bridge (a local server never gets it).
            req.meta
                .get_or_insert_with(BTreeMap::new)
                .insert(crate::mcp::PARAM_META.into(), headers);
        }
        let approvals = read(&self.approvals).clone();
        match (verdict, approvals) {
            (Verdict::Allow, _) => return target.conn.call(req),
            (Verdict::Escalate, Some(approvals)) => {
                return self.hold(&approvals, target.conn.clone(), req, &subject, &policy)
            }
            // Denied, or escalated where no approvals are kept (fail closed).
            (Verdict::Deny | Verdict::Escalate, _) => {}
        }
        let message = policy
            .refusal(&subject, req.agent.as_deref(), target.facts())
            .unwrap_or_default();
        log::info!(
            "workspace {}: policy refused {:?} for {:?}",
            self.workspace,
            subject.chars().take(200).collect::<String>(),
            req.agent
        );
        req.responder.error(code::POLICY_DENIED, &message);
    }

    /// `completion/complete`: routed by its `ref` (a prompt's merged name, rewritten; a
    /// resource template's URI, kept); refused where the policy denies the prompt or resource.
    pub(super) fn complete(
        &self,
        responder: Responder,
        params: Option<&RawValue>,
        agent: Option<String>,
        client: ClientCaps,
    ) {
        let parsed = params.map_or(Ok(Params::new()), |p| {
            serde_json::from_str::<Params>(p.get())
        });
        let Ok(mut params) = parsed else {
            return responder.error(
                code::INVALID_PARAMS,
                "completion/complete: params must be an object",
            );
        };
        let reference = params
            .get("ref")
            .and_then(|r| serde_json::from_str::<Map<String, Value>>(r.get()).ok());
        let Some(mut reference) = reference else {
            return responder.error(
                code::INVALID_PARAMS,
                "completion/complete: params.ref must be an object",
            );
        };
        let routes = self.merger.routes();
        let text = |key: &str| {
            reference
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let (target, shown) = match reference.get("type").and_then(Value::as_str) {
            Some("ref/prompt") => {
                let name = text("name").unwrap_or_default();
                (target(&routes, "prompts/get", &name), name)
            }
            Some("ref/resource") => {
                let uri = text("uri").unwrap_or_default();
                let found = routes.resources().template(&uri).map(|route| Target {
                    conn: route.conn.clone(),
                    subject: route.subject.clone(),
                    downstream: None,
                    blocked: route.blocked.clone(),
                    annotations: None,
                    params: None,
                });
                (found, uri)
            }
            _ => {
                return responder.error(
                    code::INVALID_PARAMS,
                    "completion/complete: ref.type must be \"ref/prompt\" or \"ref/resource\"",
                )
            }
        };
        let shown: String = shown.chars().take(200).collect();
        let Some(target) = target else {
            return responder.error(
                code::INVALID_PARAMS,
                &format!("completion/complete: unknown ref {shown:?}"),
            );
        };
        if let Some(reason) = &target.blocked {
            return responder.error(code::TOOL_BLOCKED, &format!("{shown:?} is {reason}"));
        }
        let policy = self.current_policy();
        let decision = policy.decide_with(&target.subject, agent.as_deref(), target.facts());
        // A completion is never held for a person: what a person must approve is not completed.
        if decision.verdict != Verdict::Allow {
            let message = policy
                .refusal(&target.subject, agent.as_deref(), target.facts())
                .unwrap_or_default();
            return responder.error(code::POLICY_DENIED, &message);
        }
        if let Some(downstream) = &target.downstream {
            reference.insert("name".into(), Value::String(downstream.clone()));
            match serde_json::value::to_raw_value(&reference) {
                Ok(raw) => params.insert("ref".into(), raw),
                Err(e) => return responder.error(code::INTERNAL_ERROR, &e.to_string()),
            };
        }
        match self.request(
            responder,
            "completion/complete",
            params,
            &target.conn,
            agent,
            client,
        ) {
            Ok(req) => target.conn.call(req),
            Err((responder, message)) => responder.error(code::INVALID_PARAMS, &message),
        }
    }

    /// The request for the connection: `_meta` without what only the gate may say, the
    /// progress token taken out (the connection maps its own), what the child may ask the agent.
    fn request(
        &self,
        responder: Responder,
        method: &'static str,
        mut params: Params,
        conn: &ConnHandle,
        agent: Option<String>,
        client: ClientCaps,
    ) -> Result<CallRequest, (Responder, String)> {
        // A 2026-07-28 retry of a call answered `input_required`: a requestState of the gate's
        // names a park the connection resumes (neither field goes to the child); any other is a
        // 2026-07-28 child's own, and both go on to it untouched.
        let modern = responder.shape() != crate::jsonrpc::Shape::Legacy;
        let resume = params
            .get("requestState")
            .filter(|_| modern)
            .and_then(|state| input::resume_of(state, params.get("inputResponses").map(|r| &**r)));
        if resume.is_some() {
            params.remove("requestState");
            params.remove("inputResponses");
        }
        // Kept raw: values the agent sends on are never re-serialized by the gate.
        let mut meta = match params.remove("_meta") {
            None => None,
            Some(raw) => match serde_json::from_str::<Params>(raw.get()) {
                Ok(meta) => Some(meta),
                Err(_) => {
                    return Err((
                        responder,
                        format!("{method}: params._meta must be an object"),
                    ))
                }
            },
        };
        if let Some(m) = meta.as_mut() {
            m.remove(crate::mcp::PARAM_META);
        }
        // Only the gate says which agent calls; a modern request's envelope is the gate's to
        // read, never a legacy child's (a Python SDK child locked to the legacy era refuses a
        // request that carries it).
        if let Some(m) = meta.as_mut() {
            m.remove(crate::mcp::AGENT_META);
            m.retain(|key, _| !key.starts_with(super::modern::RESERVED_META_PREFIX));
            if m.is_empty() {
                meta = None;
            }
        }
        let progress_token = match meta.as_mut().and_then(|m| m.remove("progressToken")) {
            Some(token) if Id::from_raw(&token).is_ok() => Some(token),
            Some(_) => {
                return Err((
                    responder,
                    format!("{method}: progressToken must be a string or number"),
                ))
            }
            None => None,
        };
        let denied = self.denied_requests(conn.name(), agent.as_deref());
        Ok(CallRequest {
            responder,
            method: method.into(),
            params,
            meta,
            progress_token,
            timeout: self.settings.call_timeout,
            agent,
            client: client.without(denied),
            max_result_bytes: (method == "resources/read").then_some(self.settings.max_read_bytes),
            resume,
        })
    }

    /// The child's requests the policy denies `server` to send `agent`: a rule matching
    /// `SERVER.@sampling`, `SERVER.@elicitation` or `SERVER.@roots` whose verdict is not
    /// `allow` (the policy's default does not count: an agent that declared a capability is
    /// asked by default).
    fn denied_requests(&self, server: &str, agent: Option<&str>) -> ClientCaps {
        let policy = self.current_policy();
        // Without rules nothing is denied: no names to build on every call.
        if policy.rules.is_empty() {
            return ClientCaps::default();
        }
        let denied = |what: &str| {
            let decision = policy.decide(&format!("{server}.@{what}"), agent);
            decision.rule.is_some() && decision.verdict != Verdict::Allow
        };
        ClientCaps {
            sampling: denied("sampling"),
            elicitation: denied("elicitation"),
            roots: denied("roots"),
        }
    }

    /// Holds an escalated call for a person in `approvals`.
    pub(super) fn hold(
        &self,
        approvals: &Approvals,
        conn: ConnHandle,
        req: CallRequest,
        tool: &str,
        policy: &Policy,
    ) {
        let arguments = req
            .params
            .get("arguments")
            .map_or("", |a| a.get())
            .to_owned();
        let agent = req.agent.clone();
        let caller = (req.responder.session(), req.responder.id().to_string());
        // An agent that asked for progress hears, every few seconds, that its call still waits
        // (which also keeps its HTTP answer stream alive).
        let keepalive: Option<approvals::KeepaliveFn> = req.progress_token.clone().map(|token| {
            let sink = req.responder.sink().clone();
            Box::new(move |beat: u64| {
                let line = format!(
                    "{{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{{\"progressToken\":{},\"progress\":{beat},\"message\":\"waiting for a person's approval\"}}}}",
                    token.get()
                );
                sink.send(line.into_bytes());
            }) as approvals::KeepaliveFn
        });
        let shown: String = tool.chars().take(200).collect();
        let release: ReleaseFn = Box::new(move |release| match release {
            Release::Approve => conn.call(req),
            Release::Deny => req.responder.error(
                code::POLICY_DENIED,
                &format!("{shown:?} was denied by a person"),
            ),
            Release::Expire => req.responder.error(
                code::POLICY_DENIED,
                &format!("{shown:?} was not approved in time"),
            ),
            Release::Full => req.responder.error(
                code::OVERLOADED,
                "too many calls are waiting for approval, or the gate is stopping; try again later",
            ),
            // A call the agent cancelled is owed nothing.
            Release::Cancel => drop(req),
            Release::Stopped => req.responder.error(
                code::SERVER_UNAVAILABLE,
                &format!("{shown:?} was waiting for approval and its workspace stopped"),
            ),
        });
        let request = approvals::Request {
            workspace: &self.workspace,
            agent: agent.as_deref(),
            tool,
            arguments: &arguments,
            timeout: policy.approval_timeout(),
            webhooks: policy.webhooks.clone(),
            caller,
        };
        if let Err(e) = approvals.hold(request, release, keepalive) {
            log::warn!(
                "workspace {}: cannot hold a call for approval: {e:?}",
                self.workspace
            );
        }
    }
}
