//! Provider contexts through the management socket (§11.4): add / get by key and id / enumerate /
//! delete, FWP_E_IN_USE while a filter references one, the filter template's
//! `provider_context`, and persistence through the store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wfp_api::{
    Client, FilterDto, FilterEnumRequest, Key, ProviderContextDto, ProviderContextEnumRequest,
};
use wfp_core::Engine;
use wfpd::api::{ApiConfig, Server};

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("wfpd-api-pctx-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn start(dir: &Path, store: Option<Arc<wfp_store::Store>>) -> (Arc<Engine>, Server) {
    let engine = Arc::new(Engine::default());
    let mut config = ApiConfig::default();
    config.socket = Some(dir.join("wfpd.sock"));
    let server = Server::start(Arc::clone(&engine), store, config).unwrap();
    (engine, server)
}

fn context(name: &str, data_hex: &str, flags: u32) -> ProviderContextDto {
    ProviderContextDto {
        key: None,
        name: name.into(),
        description: String::new(),
        flags,
        provider: None,
        provider_data_hex: String::new(),
        context_type: "FWPM_GENERAL_CONTEXT".into(),
        data_hex: data_hex.into(),
    }
}

fn filter_with(pc: Key, flags: &[&str]) -> FilterDto {
    FilterDto {
        key: None,
        name: "uses a provider context".into(),
        description: String::new(),
        flags: flags.iter().map(|f| (*f).to_string()).collect(),
        provider: None,
        layer: "ALE_AUTH_CONNECT_V4".into(),
        sublayer: None,
        weight: wfp_api::WeightDto::Auto,
        conditions: Vec::new(),
        action: "BLOCK".into(),
        callout: None,
        raw_context: 0,
        provider_context: Some(pc),
    }
}

#[test]
fn provider_contexts_through_the_socket() {
    let dir = tempdir();
    let store = Arc::new(wfp_store::Store::open(&dir.join("store.redb")).unwrap());
    let (engine, server) = start(&dir, Some(Arc::clone(&store)));
    let mut c = Client::connect(server.path()).unwrap();

    let kept = c
        .add_provider_context(&context("kept", "c0ffee", 1))
        .unwrap();
    let temp = c.add_provider_context(&context("temp", "", 0)).unwrap();
    assert_eq!((kept.id, temp.id), (Some(1), Some(2)));
    assert_eq!(
        store.load().unwrap().provider_contexts.len(),
        1,
        "only the persistent one"
    );
    let listed = c.provider_contexts().unwrap();
    assert_eq!(listed.len(), 2);
    let by_key = c.provider_context(kept.key).unwrap();
    assert_eq!(by_key.provider_context.data_hex, "c0ffee");
    assert_eq!(by_key.provider_context.context_type, "GENERAL");
    assert_eq!(
        c.provider_context_by_id(2).unwrap().provider_context.name,
        "temp"
    );
    let typed = c
        .enum_provider_contexts(&ProviderContextEnumRequest {
            provider: None,
            context_type: Some("CLASSIFY_OPTIONS".into()),
        })
        .unwrap();
    assert!(typed.is_empty());

    // A filter referencing it: context = the LUID; delete → IN_USE; the template finds it.
    let f = c
        .add_filter(&filter_with(kept.key, &["HAS_PROVIDER_CONTEXT"]))
        .unwrap();
    let rt = engine.filter(wfp_core::FilterId(f.id.unwrap())).unwrap();
    assert_eq!(rt.context, 1);
    let view = c.filter(f.id.unwrap()).unwrap();
    assert_eq!(view.filter.provider_context, Some(kept.key));
    assert_eq!(view.filter.raw_context, 0);
    let err = c.delete_object("providercontexts", kept.key).unwrap_err();
    assert_eq!(err.fwp_name(), Some("FWP_E_IN_USE"));
    let found = c
        .enum_filters(&FilterEnumRequest {
            provider_context: Some(ProviderContextEnumRequest::default()),
            ..FilterEnumRequest::default()
        })
        .unwrap();
    assert_eq!(found.len(), 1);

    // Typed errors: a missing key, the flag without a key.
    let missing = Key(wfp_core::Guid::from_name("t", "missing"));
    let err = c
        .add_filter(&filter_with(missing, &["HAS_PROVIDER_CONTEXT"]))
        .unwrap_err();
    assert_eq!(err.fwp_name(), Some("FWP_E_PROVIDER_CONTEXT_NOT_FOUND"));
    let err = c.add_filter(&filter_with(kept.key, &[])).unwrap_err();
    assert_eq!(err.fwp_name(), Some("FWP_E_INVALID_PARAMETER"));
    let err = c.provider_context_by_id(99).unwrap_err();
    assert_eq!(err.fwp_name(), Some("FWP_E_PROVIDER_CONTEXT_NOT_FOUND"));
    let mut bad = context("bad", "zz", 0);
    assert_eq!(
        c.add_provider_context(&bad).unwrap_err().fwp_name(),
        Some("FWP_E_INVALID_PARAMETER")
    );
    bad.data_hex.clear();
    bad.context_type = "NOPE".into();
    assert!(c.add_provider_context(&bad).is_err());

    c.delete_filter(f.id.unwrap()).unwrap();
    c.delete_provider_context_by_id(1).unwrap();
    c.delete_object("providercontexts", temp.key).unwrap();
    assert!(engine.provider_contexts().is_empty());
    assert_eq!(store.load().unwrap().provider_contexts.len(), 0);
    assert_eq!(c.state().unwrap().provider_contexts, 0);
    drop(c);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
