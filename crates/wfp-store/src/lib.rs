//! # wfp-store — persistent management objects, in an embedded ACID store
//!
//! WFP keeps persistent providers, sublayers, callouts and filters (`FWPM_*_FLAG_PERSISTENT`,
//! §11.3) across BFE restarts; wfpd keeps them here, in a [redb](https://docs.rs/redb) file. One
//! engine commit is one store transaction (all of its persistent changes or none), durable
//! before the engine publishes it: the store is the engine's [`PersistHook`].
//!
//! **What it never does**: guess. A file that is not a store, a damaged record, or a store
//! written by a newer format is refused with a typed [`StoreError`] (wfpd then stays in its
//! fail-closed posture); nothing is silently skipped or emptied.
//!
//! ```text
//!  Session::commit ─► PersistHook::persist(changes) ─► Store::apply ─► redb write txn ─► fsync
//!                                                                          │
//!  wfpd start ─► Store::open (format check) ─► Store::load ─► Contents::install(engine) (1 txn)
//! ```
//!
//! The file format (tables, keys, record bytes, versions) is documented in
//! `docs/store-format.md`; [`record`] implements the record layout.

pub mod record;

use std::path::Path;

use redb::{Database, ReadableTable, ReadableTableMetadata, StorageBackend, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;
use wfp_api::{CalloutDto, FilterDto, ProviderContextDto, ProviderDto, SublayerDto};
use wfp_core::engine::{ObjectRef, PersistHook, PersistentChange};
use wfp_core::{
    CalloutSpec, Engine, FilterFlags, FilterSpec, FwpError, Guid, ProviderContextSpec,
    ProviderSpec, SublayerSpec,
};

use record::{Kind, Record};

/// The store format version this build writes and the newest it opens (`meta["version"]`).
/// Version 2 added provider context records (kind 5) and boot-time filter records (kind 6); a
/// version-1 store is upgraded in place when opened (its contents are valid version 2).
pub const FORMAT_VERSION: u32 = 2;
/// `meta["format"]`: what marks a redb file as a wfp store.
pub const FORMAT_NAME: &[u8] = b"wfp-store";

const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
const OBJECTS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("objects");

/// Why the store refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The file could not be opened as a redb database (damaged, or not redb at all).
    #[error("cannot open the store {path}: {source}")]
    Open {
        /// The file.
        path: String,
        /// redb's reason.
        #[source]
        source: Box<redb::Error>,
    },
    /// A redb operation failed (I/O error, damaged page).
    #[error("store: {0}")]
    Redb(#[source] Box<redb::Error>),
    /// A redb database that is not a wfp store (no or another `meta["format"]`).
    #[error("not a wfp store: {0}")]
    NotAStore(String),
    /// Written by a newer format than this build reads.
    #[error("the store's {what} format is version {found}; this build reads up to {supported}")]
    NewerFormat {
        /// `store` or `record`.
        what: &'static str,
        /// The version found.
        found: u32,
        /// The newest this build reads.
        supported: u32,
    },
    /// A record's bytes are damaged.
    #[error("damaged record at byte {offset}: {reason}")]
    Corrupt {
        /// Byte offset in the record.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// An object's record could not be used.
    #[error("stored {object}: {source}")]
    BadRecord {
        /// The table key, as `kind guid`.
        object: String,
        /// Why.
        #[source]
        source: Box<Self>,
    },
    /// A record's JSON payload does not describe a valid object.
    #[error("bad payload: {0}")]
    BadPayload(String),
    /// A payload over 4 GiB.
    #[error("object of {0} bytes is too large to store")]
    TooLarge(usize),
}

fn db_err(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Redb(Box::new(e.into()))
}

/// The persistent objects, in commit order per kind.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Contents {
    /// Providers.
    pub providers: Vec<ProviderSpec>,
    /// Sublayers.
    pub sublayers: Vec<SublayerSpec>,
    /// Management callouts.
    pub callouts: Vec<CalloutSpec>,
    /// Provider contexts.
    pub provider_contexts: Vec<ProviderContextSpec>,
    /// Filters.
    pub filters: Vec<FilterSpec>,
    /// Boot-time filters (§11.3 FWPM_FILTER_FLAG_BOOTTIME).
    pub boottime_filters: Vec<FilterSpec>,
}

impl Contents {
    /// Number of objects.
    pub fn len(&self) -> usize {
        self.providers.len()
            + self.sublayers.len()
            + self.callouts.len()
            + self.provider_contexts.len()
            + self.filters.len()
            + self.boottime_filters.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds everything to `engine` in one transaction (providers, sublayers, callouts, provider
    /// contexts, filters, then boot-time filters, each in commit order); on any error nothing is
    /// added.
    pub fn install(&self, engine: &Engine) -> Result<usize, FwpError> {
        let mut txn = engine.begin();
        for p in &self.providers {
            txn.add_provider(p.clone())?;
        }
        for s in &self.sublayers {
            txn.add_sublayer(s.clone())?;
        }
        for c in &self.callouts {
            txn.add_callout(c.clone())?;
        }
        for pc in &self.provider_contexts {
            txn.add_provider_context(pc.clone())?;
        }
        for f in self.filters.iter().chain(&self.boottime_filters) {
            txn.add_filter(f.clone())?;
        }
        txn.commit();
        Ok(self.len())
    }
}

/// The table key of an object: its kind byte, then its GUID's 16 bytes.
fn object_key(kind: Kind, key: &Guid) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = kind as u8;
    k[1..].copy_from_slice(&key.0);
    k
}

fn describe(key: &[u8]) -> String {
    let kind = key.first().copied().and_then(Kind::from_byte);
    let guid = key
        .get(1..17)
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .map_or_else(|| format!("{key:02x?}"), |b| Guid(b).to_string());
    format!("{kind:?} {guid}")
}

/// An open store.
pub struct Store {
    db: Database,
}

impl Store {
    /// Opens the store at `path`, creating an empty one if the file does not exist.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            source: Box::new(e.into()),
        })?;
        Self::init(db)
    }

    /// Opens a store over another storage backend (tests: in-memory, failure injection).
    pub fn open_with_backend(backend: impl StorageBackend) -> Result<Self, StoreError> {
        let db = redb::Builder::new()
            .create_with_backend(backend)
            .map_err(|e| StoreError::Open {
                path: "(backend)".into(),
                source: Box::new(e.into()),
            })?;
        Self::init(db)
    }

    /// Checks the format marker and version; writes them into a fresh store.
    fn init(db: Database) -> Result<Self, StoreError> {
        let read = db.begin_read().map_err(db_err)?;
        let meta = match read.open_table(META) {
            Ok(t) => Some(t),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(db_err(e)),
        };
        match meta {
            Some(meta) => {
                let format = meta.get("format").map_err(db_err)?;
                if format.as_ref().map(|v| v.value()) != Some(FORMAT_NAME) {
                    return Err(StoreError::NotAStore(
                        "meta[\"format\"] is not wfp-store".into(),
                    ));
                }
                let version = meta
                    .get("version")
                    .map_err(db_err)?
                    .and_then(|v| <[u8; 4]>::try_from(v.value()).ok())
                    .map(u32::from_le_bytes)
                    .ok_or_else(|| StoreError::NotAStore("meta[\"version\"] missing".into()))?;
                if version > FORMAT_VERSION {
                    return Err(StoreError::NewerFormat {
                        what: "store",
                        found: version,
                        supported: FORMAT_VERSION,
                    });
                }
                if version < FORMAT_VERSION {
                    drop(meta);
                    drop(read);
                    Self::upgrade(&db)?;
                }
            }
            None => {
                if read.list_tables().map_err(db_err)?.next().is_some() {
                    return Err(StoreError::NotAStore(
                        "a redb file without meta table".into(),
                    ));
                }
                drop(read);
                let w = db.begin_write().map_err(db_err)?;
                {
                    let mut meta = w.open_table(META).map_err(db_err)?;
                    meta.insert("format", FORMAT_NAME).map_err(db_err)?;
                    meta.insert("version", FORMAT_VERSION.to_le_bytes().as_slice())
                        .map_err(db_err)?;
                    meta.insert("next_seq", 0u64.to_le_bytes().as_slice())
                        .map_err(db_err)?;
                    w.open_table(OBJECTS).map_err(db_err)?;
                }
                w.commit().map_err(db_err)?;
            }
        }
        Ok(Self { db })
    }

    /// Marks an older store as the current format (docs/store-format.md "Compatibility": every
    /// older version is a subset of the current one, so only `meta["version"]` changes).
    fn upgrade(db: &Database) -> Result<(), StoreError> {
        let w = db.begin_write().map_err(db_err)?;
        {
            let mut meta = w.open_table(META).map_err(db_err)?;
            meta.insert("version", FORMAT_VERSION.to_le_bytes().as_slice())
                .map_err(db_err)?;
        }
        w.commit().map_err(db_err)
    }

    /// Applies one engine commit's persistent changes in one durable transaction.
    pub fn apply(&self, changes: &[PersistentChange]) -> Result<(), StoreError> {
        let w = self.db.begin_write().map_err(db_err)?;
        {
            let mut meta = w.open_table(META).map_err(db_err)?;
            let mut objects = w.open_table(OBJECTS).map_err(db_err)?;
            let mut seq = meta
                .get("next_seq")
                .map_err(db_err)?
                .and_then(|v| <[u8; 8]>::try_from(v.value()).ok())
                .map_or(0, u64::from_le_bytes);
            for change in changes {
                let (kind, key, payload) = match change {
                    PersistentChange::AddProvider(s) => {
                        (Kind::Provider, s.key, json(&ProviderDto::from(s))?)
                    }
                    PersistentChange::AddSublayer(s) => {
                        (Kind::Sublayer, s.key, json(&SublayerDto::from(s))?)
                    }
                    PersistentChange::AddCallout(s) => {
                        (Kind::Callout, s.key, json(&CalloutDto::from(s))?)
                    }
                    PersistentChange::AddFilter(s) => {
                        let kind = if s.flags.contains(FilterFlags::BOOTTIME) {
                            Kind::BoottimeFilter
                        } else {
                            Kind::Filter
                        };
                        (kind, s.key, json(&FilterDto::from(s))?)
                    }
                    PersistentChange::AddProviderContext(s) => (
                        Kind::ProviderContext,
                        s.key,
                        json(&ProviderContextDto::from(s))?,
                    ),
                    PersistentChange::Delete(object) => {
                        let (kinds, key): (&[Kind], _) = match object {
                            ObjectRef::Provider(k) => (&[Kind::Provider], k),
                            ObjectRef::Sublayer(k) => (&[Kind::Sublayer], k),
                            ObjectRef::Callout(k) => (&[Kind::Callout], k),
                            // Filter keys are unique across both kinds; one of them holds it.
                            ObjectRef::Filter(k) => (&[Kind::Filter, Kind::BoottimeFilter], k),
                            ObjectRef::ProviderContext(k) => (&[Kind::ProviderContext], k),
                        };
                        for kind in kinds {
                            objects
                                .remove(object_key(*kind, key).as_slice())
                                .map_err(db_err)?;
                        }
                        continue;
                    }
                    _ => continue,
                };
                let bytes = record::encode(&Record { kind, seq, payload })?;
                seq += 1;
                objects
                    .insert(object_key(kind, &key).as_slice(), bytes.as_slice())
                    .map_err(db_err)?;
            }
            meta.insert("next_seq", seq.to_le_bytes().as_slice())
                .map_err(db_err)?;
        }
        w.commit().map_err(db_err)
    }

    /// Reads every persistent object, checking each record.
    pub fn load(&self) -> Result<Contents, StoreError> {
        let read = self.db.begin_read().map_err(db_err)?;
        let table = read.open_table(OBJECTS).map_err(db_err)?;
        let mut records: Vec<Record> = Vec::new();
        for entry in table.iter().map_err(db_err)? {
            let (k, v) = entry.map_err(db_err)?;
            let object = describe(k.value());
            let wrap = |source: StoreError| StoreError::BadRecord {
                object: object.clone(),
                source: Box::new(source),
            };
            let r = record::decode(v.value()).map_err(wrap)?;
            if k.value().len() != 17 || k.value().first() != Some(&(r.kind as u8)) {
                return Err(wrap(StoreError::Corrupt {
                    offset: 6,
                    reason: "the record's kind differs from its key's".into(),
                }));
            }
            records.push(r);
        }
        records.sort_by_key(|r| (r.kind, r.seq));
        let mut c = Contents::default();
        for r in &records {
            match r.kind {
                Kind::Provider => c.providers.push((&parse::<ProviderDto>(r)?).into()),
                Kind::Sublayer => c.sublayers.push((&parse::<SublayerDto>(r)?).into()),
                Kind::Callout => c.callouts.push(convert(&parse::<CalloutDto>(r)?)?),
                Kind::Filter => c.filters.push(filter(r, false)?),
                Kind::BoottimeFilter => c.boottime_filters.push(filter(r, true)?),
                Kind::ProviderContext => c
                    .provider_contexts
                    .push(convert(&parse::<ProviderContextDto>(r)?)?),
            }
        }
        Ok(c)
    }

    /// Number of stored objects.
    pub fn count(&self) -> Result<usize, StoreError> {
        let read = self.db.begin_read().map_err(db_err)?;
        let table = read.open_table(OBJECTS).map_err(db_err)?;
        let n = table.len().map_err(db_err)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}

impl PersistHook for Store {
    fn persist(&self, changes: &[PersistentChange]) -> Result<(), String> {
        self.apply(changes).map_err(|e| e.to_string())
    }
}

fn json<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::BadPayload(e.to_string()))
}

fn parse<T: DeserializeOwned>(r: &Record) -> Result<T, StoreError> {
    serde_json::from_slice(&r.payload)
        .map_err(|e| StoreError::BadPayload(format!("{:?} seq {}: {e}", r.kind, r.seq)))
}

/// A filter record's spec; its BOOTTIME flag must agree with its kind (a record moved between
/// kinds would change what is enforced).
fn filter(r: &Record, boottime: bool) -> Result<FilterSpec, StoreError> {
    let spec: FilterSpec = convert(&parse::<FilterDto>(r)?)?;
    if spec.flags.contains(FilterFlags::BOOTTIME) != boottime {
        return Err(StoreError::BadPayload(format!(
            "{:?} seq {}: the BOOTTIME flag disagrees with the record kind",
            r.kind, r.seq
        )));
    }
    Ok(spec)
}

fn convert<D, S>(dto: &D) -> Result<S, StoreError>
where
    for<'a> S: TryFrom<&'a D, Error = wfp_api::ConvertError>,
{
    S::try_from(dto).map_err(|e| StoreError::BadPayload(e.to_string()))
}
