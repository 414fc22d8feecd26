//! Adding a [`Policy`] to an engine: register the built-in callouts it references (built with the
//! host's [`Host`]), then add every object in **one transaction**; and replacing a running policy
//! with another in one transaction ([`replace_all`]).
//!
//! ```text
//!  apply:       register built-ins ─► begin ─► add providers, sublayers, callouts, filters ─► commit
//!  replace_all: check reconfiguration ─► register new built-ins ─► begin ─► delete previous
//!               objects ─► add new ones ─► commit ─► unregister built-ins no longer used
//!  any error:   abort, unregister what this call registered; the engine is as before
//! ```

use wfp_callouts::Host;
use wfp_core::{CalloutId, CalloutRegistration, Engine, FwpError, Guid, Status, Transaction};

use crate::error::{PolicyError, Span};
use crate::file::{Applied, CalloutEntry, Origin, Policy};

/// Registers the referenced built-in callouts, then adds every object in one transaction. On any
/// error the transaction is aborted and newly registered callouts are unregistered.
pub(crate) fn apply(policy: &Policy, engine: &Engine, host: &Host) -> Result<Applied, PolicyError> {
    let mut applied = Applied::default();
    register_builtins(policy, engine, host, &mut applied)?;
    let mut txn = engine.begin();
    match add_objects(policy, &mut txn, &mut applied) {
        Ok(()) => {
            txn.commit();
            Ok(applied)
        }
        Err(e) => {
            txn.abort();
            unregister(engine, &applied);
            Err(e)
        }
    }
}

/// Replaces the objects several earlier applies added (`previous`, one [`Applied`] per policy
/// file) with `policies`, atomically: one transaction deletes every filter, callout, sublayer and
/// provider recorded in `previous` and adds every object of `policies`, in order; the engine
/// publishes the result at commit. Returns one [`Applied`] per policy.
///
/// * **A bad policy changes nothing**: on any error the transaction is aborted (the running policy
///   stays in force, untouched) and callouts registered for the new policy are unregistered.
/// * **Built-in callouts** that both policies use stay registered (their flow contexts survive);
///   ones the new policy needs are registered before the transaction; ones only the old policy used
///   are unregistered after the commit — a callout that still has flow contexts
///   (`STATUS_DEVICE_BUSY`) stays registered and is recorded in the first returned [`Applied`],
///   so a later replace tries again.
/// * Objects of `previous` already deleted by someone else are skipped; an object still in use by
///   something outside `previous` (e.g. a sublayer holding another client's filter) fails the
///   replace.
/// * Every filter of the new policy gets a new filter id, and the layers it touches a new
///   generation, so established ALE flows are reauthorized (WFP's policy-change behaviour).
/// * Engine options (`[engine]`) cannot change on a live engine; they are ignored here.
/// * The built-ins it registers are built with `host`: pass the one the engine's other built-ins
///   report to.
pub fn replace_all(
    engine: &Engine,
    previous: &[Applied],
    policies: &[&Policy],
    host: &Host,
) -> Result<Vec<Applied>, PolicyError> {
    for policy in policies {
        check_reconfiguration(policy, engine, previous)?;
    }
    let mut out: Vec<Applied> = policies.iter().map(|_| Applied::default()).collect();
    let undo_registrations = |out: &[Applied]| out.iter().for_each(|a| unregister(engine, a));
    for (policy, applied) in policies.iter().zip(out.iter_mut()) {
        if let Err(e) = register_builtins(policy, engine, host, applied) {
            undo_registrations(&out);
            return Err(e);
        }
    }
    let mut txn = engine.begin();
    let result = delete_previous(&mut txn, previous).and_then(|()| {
        policies
            .iter()
            .zip(out.iter_mut())
            .try_for_each(|(policy, applied)| add_objects(policy, &mut txn, applied))
    });
    if let Err(e) = result {
        txn.abort();
        undo_registrations(&out);
        return Err(e);
    }
    txn.commit();
    release_previous(engine, previous, policies, &mut out);
    Ok(out)
}

/// After a replace: keeps the registrations of the old policy that the new ones still use,
/// releases the others, and records those that could not be released (still busy) in the first
/// [`Applied`].
fn release_previous(
    engine: &Engine,
    previous: &[Applied],
    policies: &[&Policy],
    out: &mut [Applied],
) {
    let wanted: Vec<Guid> = policies.iter().flat_map(|p| builtin_keys(p)).collect();
    let mut kept = Vec::new();
    for (key, id) in previous.iter().flat_map(|a| a.registered.iter()) {
        if wanted.contains(key) || !engine.unregister_callout(*id).is_success() {
            kept.push((*key, *id));
        }
    }
    if let Some(first) = out.first_mut() {
        kept.append(&mut first.registered);
        first.registered = kept;
    }
}

/// Registers the built-ins `policy` references that are not registered yet (each with its
/// parameters, reporting to `host`), recording them in `applied.registered`. On error,
/// unregisters what it registered.
fn register_builtins(
    policy: &Policy,
    engine: &Engine,
    host: &Host,
    applied: &mut Applied,
) -> Result<(), PolicyError> {
    for c in &policy.callouts {
        if c.builtin.is_some() {
            applied
                .builtin_params
                .push((c.spec.key, c.params.canonical()));
        }
        if !c.registered || engine.callout_id(&c.spec.key).is_some() {
            continue;
        }
        match register(policy, c, engine, host) {
            Ok(Some(id)) => applied.registered.push((c.spec.key, id)),
            Ok(None) => {}
            Err(e) => {
                unregister(engine, applied);
                applied.registered.clear();
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Builds and registers the built-in behind `c` (`None`: it has none).
fn register(
    policy: &Policy,
    c: &CalloutEntry,
    engine: &Engine,
    host: &Host,
) -> Result<Option<CalloutId>, PolicyError> {
    let Some(b) = c.builtin else {
        return Ok(None);
    };
    let callout =
        b.make_with(host, c.params.pairs())
            .map_err(|error| PolicyError::BuiltinRejected {
                span: c.origin.span(&policy.origin),
                field: c.origin.field.clone(),
                builtin: b.name,
                error: Box::new(error),
            })?;
    let registration = CalloutRegistration {
        key: c.spec.key,
        flags: b.flags | c.extra_flags,
        callout,
        flow_delete: b.flow_delete,
    };
    engine
        .register_callout(registration)
        .map(Some)
        .map_err(|status| PolicyError::RegistrationFailed {
            span: c.origin.span(&policy.origin),
            field: c.origin.field.clone(),
            builtin: b.name,
            status,
        })
}

/// Refuses to reuse a registration of the running policy (`previous`) for the same callout key
/// with other parameters: a registered callout cannot be reconfigured in place, and swapping it
/// outside the transaction would break the atomic replace. Derived keys include the
/// parameters, so only keys given in the file can hit this.
fn check_reconfiguration(
    policy: &Policy,
    engine: &Engine,
    previous: &[Applied],
) -> Result<(), PolicyError> {
    let registered = policy
        .callouts
        .iter()
        .filter(|c| c.builtin.is_some() && c.registered)
        .filter(|c| engine.callout_id(&c.spec.key).is_some());
    for c in registered {
        let before = previous
            .iter()
            .flat_map(|a| a.builtin_params.iter())
            .find(|(k, _)| *k == c.spec.key);
        match before {
            Some((_, old)) if *old != c.params.canonical() => {
                return Err(PolicyError::Reconfigured {
                    span: c.origin.span(&policy.origin),
                    field: format!("{}.params", c.origin.field),
                    key: c.spec.key,
                    previous: old.clone(),
                })
            }
            _ => {}
        }
    }
    Ok(())
}

/// Adds every object of `policy` to `txn`, recording them in `applied`.
fn add_objects(
    policy: &Policy,
    txn: &mut Transaction<'_>,
    applied: &mut Applied,
) -> Result<(), PolicyError> {
    let rejected = |o| rejected_by_engine(policy, o);
    for (p, o) in &policy.providers {
        applied
            .providers
            .push(txn.add_provider(p.clone()).map_err(rejected(o))?);
    }
    for (s, o) in &policy.sublayers {
        applied
            .sublayers
            .push(txn.add_sublayer(s.clone()).map_err(rejected(o))?);
    }
    for c in &policy.callouts {
        txn.add_callout(c.spec.clone())
            .map_err(rejected(&c.origin))?;
        applied.callouts.push(c.spec.key);
    }
    for (pc, o) in &policy.provider_contexts {
        txn.add_provider_context(pc.clone()).map_err(rejected(o))?;
        applied.provider_contexts.push(pc.key);
    }
    for (f, o) in &policy.filters {
        applied
            .filters
            .push(txn.add_filter(f.clone()).map_err(rejected(o))?);
    }
    Ok(())
}

/// Turns the engine's rejection of the object at `o` into an error naming it.
fn rejected_by_engine<'a>(
    policy: &'a Policy,
    o: &'a Origin,
) -> impl FnOnce(FwpError) -> PolicyError + 'a {
    move |error| PolicyError::Engine {
        span: o.span(&policy.origin),
        field: o.field.clone(),
        error: Box::new(error),
    }
}

/// Deletes the objects `previous` recorded, dependents first. Objects already gone are skipped.
fn delete_previous(txn: &mut Transaction<'_>, previous: &[Applied]) -> Result<(), PolicyError> {
    for id in previous.iter().flat_map(|a| &a.filters) {
        unless_gone("filter", txn.delete_filter(*id))?;
    }
    for key in previous.iter().flat_map(|a| &a.provider_contexts) {
        unless_gone("provider context", txn.delete_provider_context(key))?;
    }
    for key in previous.iter().flat_map(|a| &a.callouts) {
        unless_gone("callout", txn.delete_callout(key))?;
    }
    for key in previous.iter().flat_map(|a| &a.sublayers) {
        unless_gone("sublayer", txn.delete_sublayer(key))?;
    }
    for key in previous.iter().flat_map(|a| &a.providers) {
        unless_gone("provider", txn.delete_provider(key))?;
    }
    Ok(())
}

/// A delete's error, unless it says the object was already gone.
fn unless_gone<T>(object: &'static str, result: Result<T, FwpError>) -> Result<(), PolicyError> {
    match result {
        Err(
            FwpError::FilterNotFound(_)
            | FwpError::CalloutNotFound(_)
            | FwpError::SublayerNotFound(_)
            | FwpError::ProviderNotFound(_)
            | FwpError::ProviderContextNotFound(_),
        )
        | Ok(_) => Ok(()),
        Err(error) => Err(PolicyError::RemovePrevious {
            span: Span::whole("<running policy>"),
            object,
            error: Box::new(error),
        }),
    }
}

/// Keys of the built-in callouts `policy` registers.
fn builtin_keys(policy: &Policy) -> impl Iterator<Item = Guid> + '_ {
    policy
        .callouts
        .iter()
        .filter(|c| c.builtin.is_some() && c.registered)
        .map(|c| c.spec.key)
}

/// Unregisters what `applied` registered (best effort).
fn unregister(engine: &Engine, applied: &Applied) {
    for (_, id) in &applied.registered {
        let _: Status = engine.unregister_callout(*id);
    }
}
