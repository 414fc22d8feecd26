//! Handles of the asynchronous machinery (wfp-reference §9.2, §10): what creates each one, what
//! ends it, and which status a misuse gets. Every handle is a `#[repr(transparent)]` `u64`
//! newtype that borrows nothing, so the C ABI hands the same values across `extern "C"`.
//! Pending work is state inside the engine plus events a data path drains; completions are inputs.
//! Nothing here starts a thread or reads a clock.
//!
//! # Completion handle and completion context (§10.1, ALE pend)
//!
//! | step | call | effect |
//! |---|---|---|
//! | mint | `Engine::new_completion_handle()` (data path) | put it in `Metadata::completion_handle` + `COMPLETION_HANDLE` for an ALE classify |
//! | pend | `Engine::pend_operation(handle)` / `ClassifyContext::pend_operation(meta)` (callout, inside classifyFn) | returns a `CompletionContext`; the callout answers BLOCK+ABSORB |
//! | observe | `Engine::poll_pend_event()` → `OperationPended` | the data path holds the connection (drops its packets or queues them) |
//! | complete | `Engine::complete_operation(ctx, packet)` (callout, any thread) | `OperationCompleted { next }`: `Reauthorize { CLASSIFY_COMPLETION }` (AUTH_CONNECT, RESOURCE_ASSIGNMENT, AUTH_LISTEN) or `AwaitReinjection` (RECV_ACCEPT) |
//!
//! Misuse: handle 0 → STATUS_FWP_NULL_POINTER; no such classify running → STATUS_FWP_NOT_FOUND;
//! inside a reauthorization or at another layer → STATUS_FWP_CANNOT_PEND; pending twice →
//! STATUS_FWP_ALREADY_EXISTS; completing twice → STATUS_FWP_NOT_FOUND (nothing happens).
//!
//! # Classify handle (§10.2, generic pend; §10.3 writable layer data)
//!
//! `ClassifyContext::acquire_classify_handle()` → one reference. `Engine::pend_classify(h, filter,
//! out)` (only while that classifyFn runs, only at ALE_ENDPOINT_CLOSURE / ALE_CONNECT_REDIRECT /
//! ALE_BIND_REDIRECT, else STATUS_FWP_CANNOT_PEND) adds one and sets BLOCK+ABSORB;
//! `Engine::complete_classify(h, Some(out) | None)` drops it (`None` = reauthorize; the event
//! `ClassifyCompleted` carries the decision and, at redirect layers, the final request);
//! `Engine::release_classify_handle(h)` drops the caller's. The entry is freed with the last
//! reference. Double release / completion → STATUS_FWP_NOT_FOUND.
//!
//! Writable layer data: `Engine::acquire_writable_layer_data(h, filter, out)` (BLOCK, write right
//! cleared) → modify the returned `RedirectRequest` → `Engine::apply_modified_layer_data(h, filter,
//! req, flags)` exactly once (apply without acquire or twice → STATUS_FWP_NOT_FOUND; acquiring
//! twice without applying → STATUS_FWP_ALREADY_EXISTS). The data path runs these layers with
//! `Engine::classify_redirect`.
//!
//! # Redirect handle (§10.3)
//!
//! `Engine::create_redirect_handle()` / `destroy_redirect_handle()`. A request applied with
//! `redirect_handle = Some(h)` appends `(h, redirect_context)` to the connection's
//! `RedirectRecords`; `Engine::query_connection_redirect_state(records, h)` answers
//! NOT_REDIRECTED / REDIRECTED_BY_SELF / REDIRECTED_BY_OTHER / PREVIOUSLY_REDIRECTED_BY_SELF.
//!
//! # Injection handle, ledger packet, injection id (§10.4, §9.2)
//!
//! ```text
//!  create_injection_handle(family, types) ─► InjectionHandle (Open)
//!  ctx.clone_packet / ctx.clone_stream_data / allocate_packet ─► PacketId (Held)
//!  inject(Inject{handle, kind, packet, completion}) ─► Queued  (packet now the injection's)
//!  poll_injection() ─► InjectionRequest (InFlight)  ── data path re-enters at request.reentry
//!  complete_injection(id, Delivered | Dropped(st)) ─► completion runs once; packet retired
//!  free_packet(p)  (Held → freed: a discarded clone)
//!  destroy_injection_handle(h) ─► SUCCESS (nothing pending) | PENDING (Closing until the last
//!                                 completion; new injections: STATUS_FWP_INJECT_HANDLE_CLOSING)
//! ```
//!
//! A failed injection changes nothing (no completion, the caller still holds the packet).
//! Unknown handle → STATUS_FWP_INJECT_HANDLE_STALE; type not enabled on the handle →
//! STATUS_FWP_INVALID_PARAMETER; packet not held → STATUS_FWP_NOT_FOUND. Every packet ends in
//! exactly one of delivered / dropped / freed (`Engine::injection_stats`,
//! `Engine::ledger_counts`). Provenance: `InjectionRequest::provenance` goes into
//! `Metadata::injection` when the data path classifies the packet again; clones inherit it; the
//! depth bound `EngineOptions::max_injection_depth` turns injection loops into counted drops
//! (completion status STATUS_FWP_DROP_NOICMP).
//!
//! # Stream deferral (§9.2, T-ST-7)
//!
//! A DEFER verdict on inbound data records (flow, callout, layer) and queues
//! `StreamEvent::Deferred`; `Engine::stream_continue` (outside the callout's own classifyFn, else
//! STATUS_INVALID_DEVICE_STATE; not while its stream injection is pending, else
//! STATUS_FWP_IN_USE) ends it with `StreamEvent::Continued`. A DEFER on outbound data becomes a
//! BLOCK. Flow end forgets deferrals.
//!
//! # Flows (§6, T-FLOW-12, T-PEND-6)
//!
//! With `FlowTracking::Announced` the data path calls `flow_created` / `flow_ended`;
//! `flow_associate_context` refuses unknown and aborted flows (STATUS_INVALID_PARAMETER);
//! `flow_abort` runs flowDeleteFn once per context, marks the flow aborted and queues
//! `FlowEvent::Aborted` (the data path blocks later packets, then calls `flow_ended`). Policy
//! reauthorization: `flow_authorized(flow, layer)` records the layer's generation;
//! `reauthorization_epoch()` (one load per packet) moves with every commit that changes an ALE
//! authorization layer, and `flow_reauthorization(flow)` then says whether that flow's layer
//! changed (reason POLICY_CHANGE).
//!
//! # Deleted filters (§12 (a))
//!
//! A commit that deletes a callout filter queues its DELETE_FILTER notify; it is delivered once no
//! classify (on any older snapshot) and no holder of `Engine::matching_filters` still references
//! the filter — after the classify that held it, or by `Engine::deliver_deferred_notifications`.
