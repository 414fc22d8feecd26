//! The store end to end: persistent objects survive a restart, damaged and newer-format stores are
//! refused, and a write interrupted at any point leaves the last committed state.

use std::io;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use redb::{ReadableTable, StorageBackend, TableDefinition};
use wfp_core::catalogue::layers;
use wfp_core::engine::{ObjectRef, SessionSpec};
use wfp_core::filter::{
    ProviderSpec, SublayerSpec, PROVIDER_FLAG_PERSISTENT, SUBLAYER_FLAG_PERSISTENT,
};
use wfp_core::{ActionType, Engine, FilterFlags, FilterSpec, Guid};
use wfp_store::{Store, StoreError};

fn persistent_filter(name: &str, sublayer: Guid, weight: u64) -> FilterSpec {
    let mut f = FilterSpec::new(name, layers::ALE_AUTH_CONNECT_V4, ActionType::BLOCK);
    f.flags = FilterFlags::PERSISTENT;
    f.sublayer = sublayer;
    f.weight = wfp_core::WeightSpec::Exact(weight);
    f
}

/// Adds a persistent provider, sublayer and two filters through a session backed by `store`.
fn populate(engine: &Engine, store: &Store) -> (Guid, Guid) {
    let mut s = engine
        .open_session(SessionSpec::default(), Some(store))
        .unwrap();
    s.begin(0).unwrap();
    let p = s
        .add_provider(ProviderSpec {
            name: "acme".into(),
            flags: PROVIDER_FLAG_PERSISTENT,
            ..ProviderSpec::default()
        })
        .unwrap();
    let sl = s
        .add_sublayer(SublayerSpec {
            name: "acme sl".into(),
            flags: SUBLAYER_FLAG_PERSISTENT,
            provider: Some(p),
            weight: 7,
            ..SublayerSpec::default()
        })
        .unwrap();
    s.add_filter(persistent_filter("first", sl, 5)).unwrap();
    s.add_filter(persistent_filter("second", sl, 5)).unwrap();
    s.add_filter(FilterSpec::new(
        "static",
        layers::ALE_AUTH_CONNECT_V4,
        ActionType::PERMIT,
    ))
    .unwrap();
    s.commit().unwrap();
    (p, sl)
}

#[test]
fn persistent_objects_survive_a_restart_in_commit_order() {
    let dir = tempdir();
    let path = dir.join("store.redb");
    let engine = Engine::default();
    {
        let store = Store::open(&path).unwrap();
        populate(&engine, &store);
        assert_eq!(store.count().unwrap(), 4, "the static filter is not stored");
    }
    let store = Store::open(&path).unwrap();
    let contents = store.load().unwrap();
    assert_eq!(contents.len(), 4);
    let names: Vec<&str> = contents.filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["first", "second"]);
    let restarted = Engine::default();
    contents.install(&restarted).unwrap();
    let filters = restarted.filters();
    assert_eq!(filters.len(), 2);
    assert!(filters[0].filter_id() < filters[1].filter_id());
    assert_eq!(filters[0].name(), "first");
    assert_eq!(restarted.providers()[0].spec.name, "acme");

    // Deleting through a session removes the record.
    let key = filters[0].key();
    let mut s = restarted
        .open_session(SessionSpec::default(), Some(&store))
        .unwrap();
    s.delete(ObjectRef::Filter(key)).unwrap();
    assert_eq!(store.count().unwrap(), 3);
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "wfp-store-test-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

static SEQ: AtomicI64 = AtomicI64::new(0);

#[test]
fn damaged_foreign_and_newer_stores_are_refused() {
    let dir = tempdir();
    let garbage = dir.join("garbage");
    std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
    assert!(matches!(
        Store::open(&garbage),
        Err(StoreError::Open { .. })
    ));

    let foreign = dir.join("foreign.redb");
    {
        let db = redb::Database::create(&foreign).unwrap();
        let w = db.begin_write().unwrap();
        w.open_table(TableDefinition::<&str, u64>::new("other"))
            .unwrap()
            .insert("x", 1)
            .unwrap();
        w.commit().unwrap();
    }
    assert!(matches!(
        Store::open(&foreign),
        Err(StoreError::NotAStore(_))
    ));

    let newer = dir.join("newer.redb");
    drop(Store::open(&newer).unwrap());
    set_meta(&newer, "version", &3u32.to_le_bytes());
    let err = Store::open(&newer).err().unwrap();
    assert!(
        matches!(
            err,
            StoreError::NewerFormat {
                found: 3,
                supported: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("version 3"));

    let damaged = dir.join("damaged.redb");
    {
        let store = Store::open(&damaged).unwrap();
        populate(&Engine::default(), &store);
    }
    {
        let db = redb::Database::create(&damaged).unwrap();
        let w = db.begin_write().unwrap();
        {
            let mut t = w
                .open_table(TableDefinition::<&[u8], &[u8]>::new("objects"))
                .unwrap();
            let key = t
                .iter()
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .0
                .value()
                .to_vec();
            t.insert(key.as_slice(), b"WFPR\x01\x00\x01\x00garbage".as_slice())
                .unwrap();
        }
        w.commit().unwrap();
    }
    let store = Store::open(&damaged).unwrap();
    let err = store.load().unwrap_err();
    assert!(matches!(err, StoreError::BadRecord { .. }), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn boottime_filter(name: &str, port: u16) -> FilterSpec {
    let mut f = FilterSpec::new(name, layers::INBOUND_TRANSPORT_V4, ActionType::BLOCK);
    f.flags = FilterFlags::BOOTTIME;
    f.conditions = vec![wfp_core::ConditionSpec {
        field: wfp_core::catalogue::condition_by_name("IP_LOCAL_PORT").unwrap(),
        match_type: wfp_core::MatchType::Equal,
        value: wfp_core::ConditionValue::Value(wfp_core::Value::Uint16(port)),
    }];
    f
}

/// §11.3: boot-time filters are stored as record kind 6, come back as boot-time filters (never
/// classified, published for the boot ruleset), and a delete removes them; the record's kind
/// and its BOOTTIME flag must agree.
#[test]
fn boottime_filters_survive_a_restart_as_their_own_kind() {
    let dir = tempdir();
    let path = dir.join("boot.redb");
    let gone = {
        let store = Store::open(&path).unwrap();
        let engine = Engine::default();
        let mut s = engine
            .open_session(SessionSpec::default(), Some(&store))
            .unwrap();
        s.add_filter(boottime_filter("keep", 7000)).unwrap();
        let gone = s.add_filter(boottime_filter("gone", 7001)).unwrap();
        let key = engine.boottime().filters[1].key();
        s.delete(ObjectRef::Filter(key)).unwrap();
        assert!(engine
            .boottime()
            .filters
            .iter()
            .all(|f| f.filter_id() != gone));
        key
    };
    let store = Store::open(&path).unwrap();
    let contents = store.load().unwrap();
    assert!(contents.filters.is_empty());
    assert_eq!(contents.boottime_filters.len(), 1);
    assert_eq!(contents.boottime_filters[0].name, "keep");
    let engine = Engine::default();
    contents.install(&engine).unwrap();
    assert!(engine.filters().is_empty(), "never a run-time filter");
    assert_eq!(engine.boottime().filters.len(), 1);
    assert_ne!(engine.boottime().filters[0].key(), gone);
    drop(store);
    // A boot-time payload under kind 4 (a filter to enforce at run time) is refused.
    {
        let db = redb::Database::create(&path).unwrap();
        let w = db.begin_write().unwrap();
        {
            let mut t = w
                .open_table(TableDefinition::<&[u8], &[u8]>::new("objects"))
                .unwrap();
            let (k, v) = {
                let first = t.iter().unwrap().next().unwrap().unwrap();
                (first.0.value().to_vec(), first.1.value().to_vec())
            };
            assert_eq!(k[0], 6);
            let (mut k4, mut v4) = (k.clone(), v.clone());
            k4[0] = 4;
            v4[6] = 4;
            t.remove(k.as_slice()).unwrap();
            t.insert(k4.as_slice(), v4.as_slice()).unwrap();
        }
        w.commit().unwrap();
    }
    let err = Store::open(&path).unwrap().load().unwrap_err();
    assert!(err.to_string().contains("BOOTTIME"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A version-1 store opens (a subset of version 2) and is marked version 2.
#[test]
fn a_version_1_store_is_upgraded_in_place() {
    let dir = tempdir();
    let path = dir.join("v1.redb");
    {
        let store = Store::open(&path).unwrap();
        populate(&Engine::default(), &store);
    }
    set_meta(&path, "version", &1u32.to_le_bytes());
    let store = Store::open(&path).unwrap();
    assert_eq!(store.load().unwrap().len(), 4);
    drop(store);
    let db = redb::Database::create(&path).unwrap();
    let r = db.begin_read().unwrap();
    let meta = r
        .open_table(TableDefinition::<&str, &[u8]>::new("meta"))
        .unwrap();
    let v = meta.get("version").unwrap().unwrap().value().to_vec();
    assert_eq!(v, 2u32.to_le_bytes());
    drop(meta);
    drop(r);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

fn set_meta(path: &std::path::Path, key: &str, value: &[u8]) {
    let db = redb::Database::create(path).unwrap();
    let w = db.begin_write().unwrap();
    w.open_table(TableDefinition::<&str, &[u8]>::new("meta"))
        .unwrap()
        .insert(key, value)
        .unwrap();
    w.commit().unwrap();
}

/// In-memory storage whose writes start failing after `countdown` operations (a crash: nothing
/// after that point reaches the "disk").
#[derive(Debug, Clone)]
struct Crashing {
    data: Arc<Mutex<Vec<u8>>>,
    countdown: Arc<AtomicI64>,
}

impl Crashing {
    fn tick(&self) -> io::Result<()> {
        if self.countdown.fetch_sub(1, Ordering::SeqCst) <= 0 {
            return Err(io::Error::other("simulated crash"));
        }
        Ok(())
    }
}

impl StorageBackend for Crashing {
    fn len(&self) -> io::Result<u64> {
        Ok(self.data.lock().unwrap().len() as u64)
    }
    fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let d = self.data.lock().unwrap();
        let start = usize::try_from(offset).unwrap();
        d.get(start..start + len)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past end"))
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.tick()?;
        self.data
            .lock()
            .unwrap()
            .resize(usize::try_from(len).unwrap(), 0);
        Ok(())
    }
    fn sync_data(&self, _eventual: bool) -> io::Result<()> {
        self.tick()
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.tick()?;
        let mut d = self.data.lock().unwrap();
        let start = usize::try_from(offset).unwrap();
        if d.len() < start + data.len() {
            d.resize(start + data.len(), 0);
        }
        d[start..start + data.len()].copy_from_slice(data);
        Ok(())
    }
}

/// The committed filter names, in order, after each of `rounds` transactions (each adds two
/// persistent filters and deletes the oldest one).
/// `None` when the crash came before the store was first created (nothing was ever committed).
fn run_until_crash(backend: Crashing, rounds: usize) -> Option<(Vec<Vec<String>>, bool)> {
    let mut states = vec![Vec::new()];
    let store = Store::open_with_backend(backend).ok()?;
    let engine = Engine::default();
    let mut s = engine
        .open_session(SessionSpec::default(), Some(&store))
        .unwrap();
    let sl = wfp_core::catalogue::SUBLAYER_UNIVERSAL;
    let mut model: Vec<(String, Guid)> = Vec::new();
    for round in 0..rounds {
        if s.begin(0).is_err() {
            return Some((states, true));
        }
        let mut added = Vec::new();
        for i in 0..2 {
            let name = format!("r{round}f{i}");
            let id = s.add_filter(persistent_filter(&name, sl, 1)).unwrap();
            added.push((name, s.filter(id).unwrap().key()));
        }
        let mut next = model.clone();
        if let Some((_, key)) = next.first().cloned() {
            s.delete(ObjectRef::Filter(key)).unwrap();
            next.remove(0);
        }
        next.extend(added);
        if s.commit().is_err() {
            // The failed commit may or may not have become durable: both states are allowed.
            states.push(next.iter().map(|(n, _)| n.clone()).collect());
            return Some((states, true));
        }
        model = next;
        states = vec![model.iter().map(|(n, _)| n.clone()).collect()];
    }
    Some((states, false))
}

#[test]
fn a_write_interrupted_at_any_point_reopens_to_the_last_committed_state() {
    let mut crashes = 0;
    // Every second write point over six rounds (redb is slow in debug builds: ~0.4 s a run).
    for countdown in (0..56).step_by(2) {
        let backend = Crashing {
            data: Arc::new(Mutex::new(Vec::new())),
            countdown: Arc::new(AtomicI64::new(countdown)),
        };
        let run = run_until_crash(backend.clone(), 6);
        backend.countdown.store(i64::MAX, Ordering::SeqCst);
        let reopened = Store::open_with_backend(backend);
        let Some((allowed, crashed)) = run else {
            // Interrupted while the file was first created: nothing was committed, and the
            // half-written file is either refused with an error or opens empty.
            crashes += 1;
            if let Ok(store) = reopened {
                assert!(store.load().unwrap().is_empty(), "countdown {countdown}");
            }
            continue;
        };
        crashes += usize::from(crashed);
        let recovered = match reopened {
            Ok(store) => store.load().unwrap(),
            Err(e) => panic!("countdown {countdown}: reopen failed: {e}"),
        };
        let names: Vec<String> = recovered.filters.iter().map(|f| f.name.clone()).collect();
        assert!(
            allowed.contains(&names),
            "countdown {countdown}: recovered {names:?}, allowed {allowed:?}"
        );
    }
    eprintln!("{crashes} of 28 runs were interrupted by the simulated crash");
    assert!(
        crashes >= 20,
        "the countdown must actually interrupt writes ({crashes})"
    );
}

// Store format 2: persistent provider contexts survive a restart, are installed before the
// filters that reference them (the restarted filter's context is the new LUID), and their
// records go with a delete. A version-1 store is upgraded in place when opened.
#[test]
fn persistent_provider_contexts_survive_a_restart() {
    use wfp_core::provider_context::PROVIDER_CONTEXT_FLAG_PERSISTENT;
    use wfp_core::ProviderContextSpec;
    let dir = tempdir();
    let path = dir.join("pctx.redb");
    drop(Store::open(&path).unwrap());
    set_meta(&path, "version", &1u32.to_le_bytes());
    let engine = Engine::default();
    let pc_key = Guid::from_name("store-test", "pc");
    {
        let store = Store::open(&path).unwrap();
        let (p, sl) = populate(&engine, &store);
        let mut s = engine
            .open_session(SessionSpec::default(), Some(&store))
            .unwrap();
        s.add_provider_context(ProviderContextSpec {
            key: pc_key,
            flags: PROVIDER_CONTEXT_FLAG_PERSISTENT,
            provider: Some(p),
            provider_data: vec![9],
            ..ProviderContextSpec::general("acme ctx", b"\x00blob\xff".to_vec())
        })
        .unwrap();
        let mut f = persistent_filter("with ctx", sl, 9);
        f.flags = FilterFlags::PERSISTENT | FilterFlags::HAS_PROVIDER_CONTEXT;
        f.provider_context = Some(pc_key);
        s.add_filter(f).unwrap();
        assert_eq!(store.count().unwrap(), 6);
    }
    let db = redb::Database::create(&path).unwrap();
    let version = db
        .begin_read()
        .unwrap()
        .open_table(TableDefinition::<&str, &[u8]>::new("meta"))
        .unwrap()
        .get("version")
        .unwrap()
        .unwrap()
        .value()
        .to_vec();
    assert_eq!(version, 2u32.to_le_bytes(), "upgraded to format 2");
    drop(db);
    let store = Store::open(&path).unwrap();
    let contents = store.load().unwrap();
    assert_eq!(contents.provider_contexts.len(), 1);
    assert_eq!(contents.provider_contexts[0].data, b"\x00blob\xff");
    assert_eq!(contents.provider_contexts[0].provider_data, vec![9]);
    let restarted = Engine::default();
    contents.install(&restarted).unwrap();
    let pc = restarted.provider_context(&pc_key).unwrap();
    let f = restarted
        .filters()
        .into_iter()
        .find(|f| f.name() == "with ctx")
        .unwrap();
    assert_eq!(f.provider_context_key(), Some(pc_key));
    assert_eq!(f.context, pc.id.0);
    let mut s = restarted
        .open_session(SessionSpec::default(), Some(&store))
        .unwrap();
    assert_eq!(
        s.delete(ObjectRef::ProviderContext(pc_key))
            .unwrap_err()
            .code(),
        0x8032_000A
    );
    s.delete(ObjectRef::Filter(f.key())).unwrap();
    s.delete(ObjectRef::ProviderContext(pc_key)).unwrap();
    assert_eq!(store.count().unwrap(), 4);
    let _ = std::fs::remove_dir_all(&dir);
}
