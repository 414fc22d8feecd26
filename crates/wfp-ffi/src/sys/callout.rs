//! The callout adapter: a C driver's `FWPS_CALLOUTn` as a [`wfp_core::Callout`].
//!
//! Each classify builds `FWPS_INCOMING_VALUES0`, `FWPS_INCOMING_METADATA_VALUES0`, the run-time
//! filter and `layerData` (a NET_BUFFER_LIST over the packet, or an FWPS_STREAM_CALLOUT_IO_PACKET0)
//! in a per-thread scratch area reused across calls (no allocation once it has grown), binds the
//! host to the thread at DISPATCH_LEVEL, calls classifyFn and copies the outputs back.
//! `classifyContext` is the address of this call's [`Invocation`] (what FwpsAcquireClassifyHandle0,
//! cloning and the injection-state query need); it is valid only during the call.

use std::cell::Cell;
use std::ffi::c_void;
use std::sync::Arc;

use wfp_core::callout::StreamData;
use wfp_core::catalogue::layers;
use wfp_core::catalogue::{self, LayerId};
use wfp_core::constants::{Direction, MetadataFields};
use wfp_core::{
    Callout, CalloutId, ClassifyContext, ClassifyOut, ClassifyOutFlags, IncomingValues, LayerData,
    Metadata, NotifyType, Rights, RtFilter, Status, StreamAction, StreamIoPacket, Value,
};

use super::convert::Arena;
use super::ctx;
use super::invocation::Invocation;
use super::ndis::mdl_for;
use super::types::{
    CGuid, FwpByteBlob, FwpValue0, FwpsAction0, FwpsClassifyOut0, FwpsFilter, FwpsFilterCondition0,
    FwpsIncomingMetadataValues0, FwpsIncomingValues0, FwpsStreamCalloutIoPacket0, FwpsStreamData0,
    FwpsStreamDataOffset0, IpAddressPrefix, Mdl, NetBuffer, NetBufferData, NetBufferList,
    SockaddrStorage,
};
use crate::host::HostInner;
use crate::verifier::Finding;

pub(crate) type ClassifyFn0 = unsafe extern "C" fn(
    *const FwpsIncomingValues0,
    *const FwpsIncomingMetadataValues0,
    *mut c_void,
    *const FwpsFilter,
    u64,
    *mut FwpsClassifyOut0,
);
pub(crate) type ClassifyFn1 = unsafe extern "C" fn(
    *const FwpsIncomingValues0,
    *const FwpsIncomingMetadataValues0,
    *mut c_void,
    *const c_void,
    *const FwpsFilter,
    u64,
    *mut FwpsClassifyOut0,
);
pub(crate) type NotifyFn = unsafe extern "C" fn(u32, *const CGuid, *mut FwpsFilter) -> i32;
pub(crate) type FlowDeleteFn = unsafe extern "C" fn(u16, u32, u64);

/// classifyFn by version: FN0 has no classifyContext; FN1–FN3 differ only in the filter type,
/// whose layout is the same.
#[derive(Clone, Copy)]
pub(crate) enum ClassifyFn {
    V0(ClassifyFn0),
    V1(ClassifyFn1),
}

/// A registered C callout.
pub(crate) struct CCallout {
    pub(crate) host: Arc<HostInner>,
    pub(crate) driver: usize,
    pub(crate) classify: ClassifyFn,
    pub(crate) notify: Option<NotifyFn>,
    pub(crate) flow_delete: Option<FlowDeleteFn>,
}

/// A run-time filter as C sees it, cached per thread by (filter id, address, context).
struct FilterImage {
    id: u64,
    addr: usize,
    context: u64,
    _weight: Box<u64>,
    _conds: Vec<FwpsFilterCondition0>,
    _arena: Arena,
    /// `providerContext` (§11.4): the filter's provider context when its callout uses them.
    _provider_context: Option<Box<super::pctx::ProviderContextImage>>,
    filter: FwpsFilter,
}

fn filter_image(f: &RtFilter) -> Box<FilterImage> {
    let mut arena = Arena::default();
    let conds = f.conditions().conditions();
    arena.reserve_conditions(conds.iter().map(|c| &c.value));
    let mut c_conds: Vec<FwpsFilterCondition0> = conds
        .iter()
        .map(|c| FwpsFilterCondition0 {
            field_id: c.field_index,
            reserved: 0,
            match_type: c.match_type as u32,
            condition_value: arena.condition(&c.value),
        })
        .collect();
    let mut weight = Box::new(f.weight());
    let mut pc = f
        .provider_context()
        .map(|pc| super::pctx::ProviderContextImage::new(pc));
    let filter = FwpsFilter {
        filter_id: f.filter_id().0,
        weight: FwpValue0 {
            data_type: 4,
            value: std::ptr::from_mut(&mut *weight) as u64,
        },
        sub_layer_weight: f.sublayer_weight(),
        flags: f.flags().0,
        num_filter_conditions: u32::try_from(c_conds.len()).unwrap_or(u32::MAX),
        filter_condition: if c_conds.is_empty() {
            std::ptr::null_mut()
        } else {
            c_conds.as_mut_ptr()
        },
        action: FwpsAction0 {
            action_type: f.action().0,
            callout_id: f.callout_id().map_or(0, |c| c.0),
        },
        context: f.context,
        provider_context: pc
            .as_mut()
            .map_or(std::ptr::null_mut(), |pc| pc.as_mut_ptr().cast()),
    };
    Box::new(FilterImage {
        id: f.filter_id().0,
        addr: std::ptr::from_ref(f) as usize,
        context: f.context,
        _weight: weight,
        _conds: c_conds,
        _arena: arena,
        _provider_context: pc,
        filter,
    })
}

const FILTER_CACHE: usize = 8;

/// The indicated NET_BUFFER_LIST → NET_BUFFER → MDL, boxed so that a referenced list can leave the
/// scratch without moving ([`Scratch::detach`]).
pub(crate) struct PacketBufs {
    nbl: NetBufferList,
    nb: NetBuffer,
    mdl: Mdl,
    /// The bytes of a detached (referenced) list, or, in the scratch, of an indicated list with
    /// headers behind its data start.
    copy: Vec<u8>,
    /// The data offset the list was indicated at (the headers' length).
    start: u32,
}

impl PacketBufs {
    fn new() -> Box<Self> {
        let (nbl, nb) = super::nbl::zeroed_lists();
        Box::new(Self {
            nbl,
            nb,
            mdl: mdl_for(std::ptr::null_mut(), 0),
            copy: Vec::new(),
            start: 0,
        })
    }

    /// Describes `data` with `behind` (the bytes before the layer's data offset, §8.2: the IP and
    /// transport headers at the inbound layers whose data starts at the payload) in front of it
    /// in the same MDL, the data starting after them: NdisRetreatNetBufferDataStart by
    /// `ipHeaderSize + transportHeaderSize` reaches the real headers, as on Windows.
    fn over_copy_with(&mut self, v: View<'_>, data: &[u8]) {
        self.copy.clear();
        self.copy.extend_from_slice(v.behind);
        self.copy.extend_from_slice(v.lead);
        self.copy.extend_from_slice(data);
        let (ptr, len) = (self.copy.as_ptr(), self.copy.len());
        self.point_at(ptr, len);
        let off = u32::try_from(v.behind.len() + v.skip.min(data.len())).unwrap_or(0);
        self.nb.data.current_mdl_offset = off;
        self.nb.data.data_offset = off;
        self.nb.data.data_length = v.data_len(data.len());
        self.start = off;
    }

    /// Moves the data start `skip` bytes into the MDL (at most its length): the bytes before it
    /// stay behind the start, reachable by a retreat.
    fn start_at(&mut self, skip: usize) {
        let off = u32::try_from(skip).unwrap_or(0);
        let d = &mut self.nb.data;
        d.current_mdl_offset = off;
        d.data_offset = off;
        d.data_length = d.data_length.saturating_sub(u64::from(off));
        self.start = off;
    }

    /// Describes `len` bytes at `data` (read-only).
    fn point_at(&mut self, data: *const u8, len: usize) {
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        self.mdl = mdl_for(data.cast_mut().cast(), len);
        self.mdl.mdl_flags |= 0x1 | 0x4;
        self.nb.data = NetBufferData {
            next: std::ptr::null_mut(),
            current_mdl: &mut self.mdl,
            current_mdl_offset: 0,
            data_length: u64::from(len),
            mdl_chain: &mut self.mdl,
            data_offset: 0,
        };
        self.start = 0;
        self.nbl.next = std::ptr::null_mut();
        self.nbl.first_net_buffer = &mut self.nb;
        self.nbl.nbl_flags = 0x1 | 0x2;
        self.nbl.status = 0;
    }
}

/// What one classify builds for C; boxed so the addresses handed to C do not move.
struct Scratch {
    arena: Arena,
    values: Vec<FwpValue0>,
    /// How many leading entries of `values` the last call wrote (the rest are FWP_EMPTY).
    set_len: usize,
    meta: FwpsIncomingMetadataValues0,
    /// The processPath `path` holds (kept alive: compared by address).
    path_src: Option<Arc<str>>,
    /// The layer of the last conversion, its field count and ALE_APP_ID mask.
    layer: Option<LayerId>,
    field_count: Option<usize>,
    app_ids: u64,
    path: Vec<u16>,
    path_blob: FwpByteBlob,
    /// `originalDestination`'s SOCKADDR (metadata_pointers).
    original_destination: SockaddrStorage,
    /// Whether the last metadata_pointers call set any pointer field (else they are all clear).
    pointers_set: bool,
    bufs: Box<PacketBufs>,
    stream: FwpsStreamData0,
    io: FwpsStreamCalloutIoPacket0,
    #[expect(
        clippy::vec_box,
        reason = "C holds pointers into each image: it must not move when the cache grows"
    )]
    filters: Vec<Box<FilterImage>>,
    next_slot: usize,
    /// The slot the last lookup found (checked first: consecutive classifies mostly hit one filter).
    last_slot: usize,
}

fn zeroed_meta() -> FwpsIncomingMetadataValues0 {
    // SAFETY: the metadata struct is plain data (integers and raw pointers); all-zero is its
    // documented "nothing present" state.
    unsafe { std::mem::zeroed() }
}

impl Scratch {
    /// Once per thread (and for a nested classify): kept out of line so the classify frame stays
    /// small.
    #[cold]
    #[inline(never)]
    fn new() -> Box<Self> {
        // SAFETY: NET_BUFFER_LIST / NET_BUFFER / stream structs are plain C data; zero is a valid
        // (empty) value for each.
        let (stream, io) = unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
        Box::new(Self {
            arena: Arena::default(),
            values: Vec::new(),
            set_len: 0,
            meta: zeroed_meta(),
            path_src: None,
            layer: None,
            field_count: None,
            app_ids: 0,
            path: Vec::new(),
            path_blob: FwpByteBlob {
                size: 0,
                data: std::ptr::null_mut(),
            },
            original_destination: SockaddrStorage { bytes: [0; 128] },
            pointers_set: false,
            bufs: PacketBufs::new(),
            stream,
            io,
            filters: Vec::with_capacity(FILTER_CACHE),
            next_slot: 0,
            last_slot: 0,
        })
    }

    #[inline]
    fn filter(&mut self, f: &RtFilter) -> *const FwpsFilter {
        let addr = std::ptr::from_ref(f) as usize;
        let id = f.filter_id().0;
        let hit = |i: &FilterImage| i.id == id && i.addr == addr && i.context == f.context;
        if let Some(img) = self.filters.get(self.last_slot).filter(|i| hit(i)) {
            return &img.filter;
        }
        if let Some(slot) = self.filters.iter().position(|i| hit(i)) {
            self.last_slot = slot;
            return &self.filters[slot].filter;
        }
        self.add_filter(f)
    }

    /// Builds and caches the image of a filter not in the cache (evicting round-robin when full).
    #[cold]
    fn add_filter(&mut self, f: &RtFilter) -> *const FwpsFilter {
        let img = filter_image(f);
        let slot = if self.filters.len() < FILTER_CACHE {
            self.filters.push(img);
            self.filters.len() - 1
        } else {
            let s = self.next_slot % FILTER_CACHE;
            self.next_slot = self.next_slot.wrapping_add(1);
            self.filters[s] = img;
            s
        };
        self.last_slot = slot;
        &self.filters[slot].filter
    }

    /// `FWPS_INCOMING_VALUES0` (wfp-reference §2.2): the layer's field count and app-id mask are
    /// cached per layer; values of inline types (integers, FWP_EMPTY — most fields) are written
    /// straight into the reused array, and only a set holding pointer types reserves the arena
    /// first. Trailing FWP_EMPTY values are found by a tag scan and not converted: the array
    /// beyond the last value set is FWP_EMPTY already, except what the previous call set there.
    #[inline]
    fn values(&mut self, values: &IncomingValues<'_>) -> FwpsIncomingValues0 {
        if self.layer != Some(values.layer) {
            self.switch_layer(values.layer);
        }
        // An uncatalogued layer takes the array's length from each call.
        let count = self.field_count.unwrap_or(values.values.len());
        if self.values.len() != count {
            self.resize_values(count);
        }
        let given = &values.values[..values.values.len().min(count)];
        let live = set_prefix(given);
        let given = &given[..live];
        // Fast path: every value inline (app-id fields are blobs, so never here).
        if !fill_inline(&mut self.values[..live], given) {
            self.fill_arena(given);
        }
        if self.set_len > live {
            // What the previous call set beyond this call's last value (`set_len <= count`).
            let stale = self.set_len.min(count);
            self.values[live..stale].fill(EMPTY);
        }
        self.set_len = live;
        FwpsIncomingValues0 {
            layer_id: values.layer.0,
            value_count: u32::try_from(count).unwrap_or(u32::MAX),
            incoming_value: self.values.as_mut_ptr(),
        }
    }

    /// A classify at another layer than the last: its field count and app-id mask, and an array
    /// of that many FWP_EMPTY values.
    #[cold]
    #[inline(never)]
    fn switch_layer(&mut self, layer: LayerId) {
        self.layer = Some(layer);
        self.field_count = catalogue::layer(layer).map(|d| d.fields.len());
        self.app_ids = app_id_fields(layer);
        self.values.clear();
        self.set_len = 0;
    }

    /// The array at `count` values (a layer switch, or an uncatalogued layer's call with another
    /// length); what it held beyond `set_len` is FWP_EMPTY, so growing keeps that true.
    #[cold]
    #[inline(never)]
    fn resize_values(&mut self, count: usize) {
        self.values.resize(count, EMPTY);
        self.set_len = self.set_len.min(count);
    }

    /// The general conversion of `given` (some value needs arena storage).
    #[cold]
    #[inline(never)]
    fn fill_arena(&mut self, given: &[Value]) {
        let mask = self.app_ids;
        let utf16 = |i: usize| i < 64 && mask & (1 << i) != 0;
        self.arena.reserve_values(given, utf16);
        for (i, (dst, v)) in self.values.iter_mut().zip(given).enumerate() {
            *dst = self.arena.value(v, utf16(i));
        }
    }

    /// `FWPS_INCOMING_METADATA_VALUES0` (wfp-reference §2.3): the scalar fields and processPath;
    /// the other pointer fields in [`Self::metadata_pointers`].
    #[inline]
    fn metadata(&mut self, m: &Metadata) {
        let mut present = m.present;
        if m.completion_handle == 0 {
            present.0 &= !MetadataFields::COMPLETION_HANDLE.0;
        }
        let c = &mut self.meta;
        c.completion_handle = m.completion_handle as *mut c_void;
        c.transport_endpoint_handle = m.transport_endpoint_handle;
        c.current_metadata_values = present.0;
        c.flags = m.incoming_flags;
        c.discard_metadata.discard_module = m.discard_module;
        c.discard_metadata.discard_reason = m.discard_reason;
        c.discard_metadata.filter_id = m.discard_filter_id;
        c.token = m.token;
        c.path_mtu = m.path_mtu;
        c.remote_scope_id = m.remote_scope_id;
        c.parent_endpoint_handle = m.parent_endpoint_handle;
        c.local_redirect_target_pid = m.local_redirect_target_pid;
        c.sub_process_tag = m.sub_process_tag as *mut c_void;
        c.flow_handle = m.flow_handle;
        c.ip_header_size = m.ip_header_size;
        c.transport_header_size = m.transport_header_size;
        c.process_id = m.process_id;
        c.source_interface_index = m.source_interface_index;
        c.destination_interface_index = m.destination_interface_index;
        c.compartment_id = m.compartment_id;
        c.fragment_metadata.fragment_identification = m.fragment.identification;
        c.fragment_metadata.fragment_offset = m.fragment.offset;
        c.fragment_metadata.fragment_length = m.fragment.length;
        c.packet_direction = m.packet_direction.map_or(0, |d| d as u32);
        c.icmp_id_and_sequence = m.icmp_id_and_sequence;
        c.frame_length = m.frame_length;
        self.meta.process_path = match &m.process_path {
            Some(p) => {
                if !self.path_src.as_ref().is_some_and(|k| Arc::ptr_eq(k, p)) {
                    self.set_process_path(p);
                }
                // Rewritten every call, as every other field (classifyFn may not keep changes).
                self.path_blob = FwpByteBlob {
                    size: u32::try_from(self.path.len() * 2).unwrap_or(u32::MAX),
                    data: self.path.as_mut_ptr().cast(),
                };
                &mut self.path_blob
            }
            None => std::ptr::null_mut(),
        };
        self.metadata_pointers(m);
    }

    /// processPath (wfp-reference §2.3) as UTF-16 with a NUL, converted when the path is not the
    /// one the last call converted. The path's `Arc` is kept, so its address cannot be reused by
    /// another path while it is the cache key.
    #[inline(never)]
    fn set_process_path(&mut self, p: &Arc<str>) {
        self.path.clear();
        self.path.extend(p.encode_utf16());
        self.path.push(0);
        self.path_src = Some(p.clone());
    }

    /// wfp-reference §2.3: controlData/controlDataLength, headerIncludeHeader/Length,
    /// destinationPrefix, originalDestination and redirectRecords, each present (with its
    /// FWPS_METADATA_FIELD_* bit) exactly when the engine's metadata has it. The pointers are into
    /// the metadata's own buffers (valid for the classifyFn call); redirectRecords is the address
    /// of the records, which FwpsQueryConnectionRedirectState0 recognises.
    #[inline]
    fn metadata_pointers(&mut self, m: &Metadata) {
        const FIELDS: u32 = MetadataFields::TRANSPORT_CONTROL_DATA.0
            | MetadataFields::TRANSPORT_HEADER_INCLUDE_HEADER.0
            | MetadataFields::DESTINATION_PREFIX.0
            | MetadataFields::ORIGINAL_DESTINATION.0
            | MetadataFields::REDIRECT_RECORD_HANDLE.0;
        self.meta.current_metadata_values &= !FIELDS;
        let none = m.control_data.is_none()
            && m.header_include_header.is_none()
            && m.destination_prefix.is_none()
            && m.original_destination.is_none()
            && m.redirect_records.is_none();
        // Fast path (most classifies): nothing to set and nothing left from the last call.
        if none && !self.pointers_set {
            return;
        }
        self.set_metadata_pointers(m, none);
    }

    /// [`Self::metadata_pointers`] when some pointer is set now or was by the last call.
    #[inline(never)]
    fn set_metadata_pointers(&mut self, m: &Metadata, none: bool) {
        self.pointers_set = !none;
        let c = &mut self.meta;
        let mut present = 0;
        let blob = |b: &Option<Arc<[u8]>>| match b {
            Some(b) => (
                b.as_ptr().cast_mut().cast::<c_void>(),
                u32::try_from(b.len()).unwrap_or(u32::MAX),
            ),
            None => (std::ptr::null_mut(), 0),
        };
        (c.control_data, c.control_data_length) = blob(&m.control_data);
        if m.control_data.is_some() {
            present |= MetadataFields::TRANSPORT_CONTROL_DATA.0;
        }
        (c.header_include_header, c.header_include_header_length) = blob(&m.header_include_header);
        if m.header_include_header.is_some() {
            present |= MetadataFields::TRANSPORT_HEADER_INCLUDE_HEADER.0;
        }
        c.destination_prefix =
            m.destination_prefix
                .map_or_else(IpAddressPrefix::default, |(a, len)| {
                    present |= MetadataFields::DESTINATION_PREFIX.0;
                    prefix_to_c(a, len)
                });
        c.original_destination = match m.original_destination {
            Some(a) => {
                present |= MetadataFields::ORIGINAL_DESTINATION.0;
                self.original_destination = super::pend::sockaddr_to_c(a);
                std::ptr::from_mut(&mut self.original_destination).cast()
            }
            None => std::ptr::null_mut(),
        };
        c.redirect_records = match &m.redirect_records {
            Some(r) => {
                present |= MetadataFields::REDIRECT_RECORD_HANDLE.0;
                Arc::as_ptr(r).cast_mut().cast()
            }
            None => std::ptr::null_mut(),
        };
        c.current_metadata_values |= present;
    }

    /// An NBL → NB → MDL chain over `data` (read-only: NDIS_NBL_FLAGS_*_READ_ONLY).
    #[inline]
    fn packet(&mut self, data: &[u8], view: View<'_>) -> *mut NetBufferList {
        if view.behind.is_empty() && view.lead.is_empty() {
            // Over the layerData itself (no copy), the data start `skip` bytes in.
            self.bufs.point_at(data.as_ptr(), data.len());
            if view.skip != 0 {
                self.bufs.start_at(view.skip.min(data.len()));
            }
        } else {
            self.bufs.over_copy_with(view, data);
        }
        &mut self.bufs.nbl
    }

    /// FwpsReferenceNetBufferList0 kept the indicated list: it leaves the scratch (over a copy of
    /// its bytes) for the host, which frees it at the last dereference.
    #[cold]
    #[inline(never)]
    /// The indicated list `nbl` was referenced during classifyFn: what references are left (a
    /// worker may already have dropped them) keep it, with a copy of its bytes, in `referenced`.
    fn detach(&mut self, host: &HostInner, driver: usize, data: (&[u8], View<'_>), nbl: usize) {
        let mut st = host.asyncs.lock();
        let Some(refs) = st.inflight.remove(&nbl).filter(|n| *n > 0) else {
            return;
        };
        let mut kept = std::mem::replace(&mut self.bufs, PacketBufs::new());
        kept.over_copy_with(data.1, data.0);
        let key = std::ptr::from_mut(&mut kept.nbl) as usize;
        st.referenced.insert(key, (kept, refs, driver));
    }

    /// The stream layers' layerData (FWPS_STREAM_CALLOUT_IO_PACKET0), the invocation's stream
    /// data and the FWPS_STREAM_DATA0 address; out of line, off the packet layers' path.
    #[inline(never)]
    fn stream_args<'s>(
        &mut self,
        io: &StreamIoPacket<'s>,
    ) -> (*mut c_void, Option<StreamData<'s>>, *const FwpsStreamData0) {
        let ptr = self.stream(io).cast();
        (ptr, Some(io.stream_data), &raw const self.stream)
    }

    /// What classifyFn wrote into the stream layers' I/O packet, back into the engine's.
    #[inline(never)]
    fn stream_result(&self, host: &HostInner, io: &mut StreamIoPacket<'_>) {
        io.count_bytes_required = self.io.count_bytes_required;
        io.count_bytes_enforced = self.io.count_bytes_enforced as u64;
        io.stream_action = stream_action(self.io.stream_action).unwrap_or_else(|| {
            host.finding(Finding::Assertion {
                message: format!(
                    "classifyFn set an unknown streamAction {}",
                    self.io.stream_action
                ),
            });
            StreamAction::None
        });
    }

    fn stream(&mut self, io: &StreamIoPacket<'_>) -> *mut FwpsStreamCalloutIoPacket0 {
        let plain = View {
            behind: &[],
            lead: &[],
            skip: 0,
        };
        let nbl = self.packet(io.stream_data.data, plain);
        self.stream = FwpsStreamData0 {
            flags: io.stream_data.flags.0,
            data_offset: FwpsStreamDataOffset0 {
                net_buffer_list: nbl,
                net_buffer: &mut self.bufs.nb,
                mdl: &mut self.bufs.mdl,
                mdl_offset: 0,
                net_buffer_offset: 0,
                stream_data_offset: 0,
            },
            data_length: io.stream_data.data.len(),
            net_buffer_list_chain: nbl,
        };
        self.io = FwpsStreamCalloutIoPacket0 {
            stream_data: &mut self.stream,
            missed_bytes: usize::try_from(io.missed_bytes).unwrap_or(usize::MAX),
            count_bytes_required: io.count_bytes_required,
            count_bytes_enforced: usize::try_from(io.count_bytes_enforced).unwrap_or(usize::MAX),
            stream_action: io.stream_action as u32,
        };
        &mut self.io
    }

    /// After classifyFn: the NET_BUFFER must be back where it was (a retreat must be advanced
    /// back before returning, wdk-runtime.md §6). Restores it and reports when it is not.
    #[inline]
    fn check_packet_restored(&mut self, host: &HostInner, len: u64) {
        let d = &self.bufs.nb.data;
        if d.data_offset != self.bufs.start
            || d.data_length != len
            || d.mdl_chain != std::ptr::from_mut(&mut self.bufs.mdl)
        {
            self.restore_packet(host);
        }
    }

    #[cold]
    fn restore_packet(&mut self, host: &HostInner) {
        // Free what a retreat left at the head of the chain.
        let mut m = self.bufs.nb.data.mdl_chain;
        let own: *mut Mdl = &mut self.bufs.mdl;
        while !m.is_null() && m != own {
            // SAFETY: every MDL before our own in the chain was allocated by
            // NdisRetreatNetBufferDataStart (Box + calloc) and recorded in the tracker.
            unsafe {
                let next = (*m).next;
                if let Some(buf) = host.tracker.lock().retreat_mdls.remove(&(m as usize)) {
                    libc::free(buf as *mut c_void);
                    drop(Box::from_raw(m));
                }
                m = next;
            }
        }
        host.finding(Finding::Assertion {
            message: "classifyFn returned with the NET_BUFFER retreated or advanced (data start not restored)"
                .into(),
        });
    }
}

/// A reauthorization classify of a flow whose FwpsCompleteOperation0 a driver thread is waiting
/// in (see pend.rs): the flow and the completer's processor.
#[inline]
fn reauth_waiter(host: &HostInner, ctx: &ClassifyContext<'_>) -> Option<(u64, u32)> {
    // No driver thread waits (nearly always): no scan of the FLAGS value.
    if host
        .reauth_waiting
        .load(std::sync::atomic::Ordering::SeqCst)
        == 0
        || !ctx.is_reauthorization()
    {
        return None;
    }
    let flow = ctx.flow()?;
    let st = host.asyncs.lock();
    let w = st.reauth_waiters.get(&flow).filter(|w| !w.done)?;
    Some((flow, w.processor))
}

/// How the indicated list's MDL lays out around the engine's layerData: `behind` (bytes before
/// it, from `Metadata::header_bytes`) behind the data start, `lead` (more of them) leading the
/// data, or the first `skip` bytes of the layerData behind the data start (`lead` is then empty).
#[derive(Clone, Copy)]
struct View<'a> {
    behind: &'a [u8],
    lead: &'a [u8],
    skip: usize,
}

impl View<'_> {
    /// DataLength of the list over `len` bytes of layerData.
    fn data_len(&self, len: usize) -> u64 {
        (self.lead.len() + len.saturating_sub(self.skip)) as u64
    }
}

/// §8.2 "Data offset positions", where this engine's layerData differs from WFP's NBL offset.
/// At the layers whose layerData is the payload (INBOUND_TRANSPORT, the ALE layers,
/// DATAGRAM_DATA) the headers the data path passes (`Metadata::header_bytes`) go behind the data
/// start — except that outbound, WFP indicates at the transport header, which then leads the
/// data. At the layers whose layerData is the whole IP packet here but whose NBL starts further
/// in on Windows ([`ip_packet_skip`]: INBOUND_IPPACKET and OUTBOUND_TRANSPORT at the transport
/// header, OUTBOUND_ICMP_ERROR at the ICMP header, INBOUND_ICMP_ERROR at the inner IP header)
/// the headers before that start stay in the MDL behind it. NdisRetreatNetBufferDataStart by
/// `ipHeaderSize` (+ `transportHeaderSize`) reaches the real headers, as on Windows.
#[inline]
fn view(layer: LayerId, meta: &Metadata) -> View<'_> {
    let plain = View {
        behind: &[],
        lead: &[],
        skip: 0,
    };
    // One bit per run-time layer id (§8.1; every layer with packet data is below 64).
    let bit = 1u64.checked_shl(u32::from(layer.0)).unwrap_or(0);
    if PAYLOAD_LAYERS & bit == 0 {
        return View {
            skip: ip_packet_skip(bit, meta),
            ..plain
        };
    }
    let h = meta.header_bytes.as_deref().unwrap_or_default();
    if meta.packet_direction != Some(Direction::Outbound)
        || layer == layers::INBOUND_TRANSPORT_V4
        || layer == layers::INBOUND_TRANSPORT_V6
    {
        return View { behind: h, ..plain };
    }
    let t = (meta.transport_header_size as usize).min(h.len());
    let (behind, lead) = h.split_at(h.len() - t);
    View {
        behind,
        lead,
        skip: 0,
    }
}

/// §8.2: how many bytes of an IP packet (the layerData here) lie before WFP's NBL data start at
/// `layer` or its discard layer: the IP header at INBOUND_IPPACKET (the list starts at the
/// transport header), OUTBOUND_TRANSPORT (at the transport header) and OUTBOUND_ICMP_ERROR (at
/// the ICMP header); the IP and ICMP headers at INBOUND_ICMP_ERROR (at the inner IP header);
/// none elsewhere (OUTBOUND_IPPACKET and IPFORWARD start at the IP header).
/// `bit`: the layer's bit (1 << its run-time id).
#[inline]
fn ip_packet_skip(bit: u64, meta: &Metadata) -> usize {
    if IP_HEADER_BEHIND & bit != 0 {
        meta.ip_header_size as usize
    } else if IP_AND_ICMP_HEADERS_BEHIND & bit != 0 {
        // The ICMP error header (type, code, checksum, 4 bytes unused / MTU) is 8 bytes.
        meta.ip_header_size as usize + 8
    } else {
        0
    }
}

/// INBOUND_IPPACKET_V4/V6, OUTBOUND_TRANSPORT_V4/V6, OUTBOUND_ICMP_ERROR_V4/V6 and their
/// discard layers, by run-time id.
const IP_HEADER_BEHIND: u64 = layer_bits(
    true,
    &[
        layers::INBOUND_IPPACKET_V4,
        layers::INBOUND_IPPACKET_V6,
        layers::OUTBOUND_TRANSPORT_V4,
        layers::OUTBOUND_TRANSPORT_V6,
        layers::OUTBOUND_ICMP_ERROR_V4,
        layers::OUTBOUND_ICMP_ERROR_V6,
    ],
);

/// INBOUND_ICMP_ERROR_V4/V6 and their discard layers.
const IP_AND_ICMP_HEADERS_BEHIND: u64 = layer_bits(
    true,
    &[layers::INBOUND_ICMP_ERROR_V4, layers::INBOUND_ICMP_ERROR_V6],
);

/// The bits of `ids` (all below 64), with `discard`, of their discard layers (id + 1) too.
const fn layer_bits(discard: bool, ids: &[LayerId]) -> u64 {
    let each = if discard { 3u64 } else { 1u64 };
    let mut bits = 0u64;
    let mut i = 0;
    while i < ids.len() {
        bits |= each << ids[i].0;
        i += 1;
    }
    bits
}

/// The layers whose layerData is the transport payload here (the data path passes the headers
/// in `Metadata::header_bytes`).
const PAYLOAD_LAYERS: u64 = layer_bits(
    false,
    &[
        layers::INBOUND_TRANSPORT_V4,
        layers::INBOUND_TRANSPORT_V6,
        layers::ALE_AUTH_RECV_ACCEPT_V4,
        layers::ALE_AUTH_RECV_ACCEPT_V6,
        layers::ALE_AUTH_CONNECT_V4,
        layers::ALE_AUTH_CONNECT_V6,
        layers::ALE_FLOW_ESTABLISHED_V4,
        layers::ALE_FLOW_ESTABLISHED_V6,
        layers::DATAGRAM_DATA_V4,
        layers::DATAGRAM_DATA_V6,
    ],
);

/// The length of `values` without its trailing FWP_EMPTY values: a tag test per value, four per
/// loop step while they are all empty (most layers leave many trailing fields unset).
#[inline]
fn set_prefix(values: &[Value]) -> usize {
    use Value::Empty;
    let mut rest = values;
    while let [head @ .., Empty, Empty, Empty, Empty] = rest {
        rest = head;
    }
    while let [head @ .., Empty] = rest {
        rest = head;
    }
    rest.len()
}

const EMPTY: FwpValue0 = FwpValue0 {
    data_type: 0,
    value: 0,
};

/// Writes the `FWP_VALUE0` of each of `src` into `dst` while the values hold themselves
/// (integers, float, FWP_EMPTY and the types with no C form, as [`Arena::value`] converts them); false at
/// the first one that needs arena storage. Every variant is named, so the match is one indexed
/// jump on the tag with no range check.
#[inline]
fn fill_inline(dst: &mut [FwpValue0], src: &[Value]) -> bool {
    for (d, v) in dst.iter_mut().zip(src) {
        let (t, x): (u32, u64) = match v {
            Value::Empty | Value::SecurityDescriptor(_) | Value::TokenInformation(_) => (0, 0),
            Value::Uint8(x) => (1, u64::from(*x)),
            Value::Uint16(x) => (2, u64::from(*x)),
            Value::Uint32(x) => (3, u64::from(*x)),
            Value::Int8(x) => (5, u64::from(*x as u8)),
            Value::Int16(x) => (6, u64::from(*x as u16)),
            Value::Int32(x) => (7, u64::from(*x as u32)),
            Value::Float(x) => (9, u64::from(x.to_bits())),
            Value::Uint64(_)
            | Value::Int64(_)
            | Value::Double(_)
            | Value::ByteArray16(_)
            | Value::ByteBlob(_)
            | Value::Sid(_)
            | Value::TokenAccessInformation(_)
            | Value::UnicodeString(_)
            | Value::ByteArray6(_) => return false,
        };
        *d = FwpValue0 {
            data_type: t,
            value: x,
        };
    }
    true
}

/// Bit `i` set when field `i` of the layer is an application path (ALE_APP_ID,
/// ALE_ORIGINAL_APP_ID): Windows hands those as UTF-16 with a NUL. Derived once from the catalogue.
fn app_id_fields(layer: LayerId) -> u64 {
    static MASKS: std::sync::OnceLock<Vec<u64>> = std::sync::OnceLock::new();
    MASKS
        .get_or_init(|| {
            catalogue::all_layers()
                .iter()
                .map(|l| {
                    l.fields
                        .iter()
                        .enumerate()
                        .filter(|(i, f)| *i < 64 && f.name.ends_with("APP_ID"))
                        .fold(0u64, |m, (i, _)| m | (1 << i))
                })
                .collect()
        })
        .get(usize::from(layer.0))
        .copied()
        .unwrap_or(0)
}

thread_local! {
    /// This thread's scratch; taken out for the duration of a classify (a nested classify on the
    /// same thread finds it empty and uses a fresh one).
    static SCRATCH: Cell<Option<Box<Scratch>>> = const { Cell::new(None) };
}

/// Runs `f` with this thread's scratch (a fresh one if a nested classify is using it). Taking the
/// box out of a `Cell` and putting it back is two TLS stores, cheaper than a `RefCell` borrow.
#[inline]
fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    let mut s = SCRATCH.take().unwrap_or_else(Scratch::new);
    let r = f(&mut s);
    // A nested classify that left its fresh scratch here is dropped in favour of this one.
    if let Some(nested) = SCRATCH.replace(Some(s)) {
        drop_nested(nested);
    }
    r
}

#[cold]
fn drop_nested(s: Box<Scratch>) {
    drop(s);
}

fn stream_action(v: u32) -> Option<StreamAction> {
    Some(match v {
        0 => StreamAction::None,
        1 => StreamAction::NeedMoreData,
        2 => StreamAction::DropConnection,
        3 => StreamAction::Defer,
        4 => StreamAction::AllowConnection,
        _ => return None,
    })
}

impl CCallout {
    #[inline(always)]
    fn call_classify(
        &self,
        args: (
            &FwpsIncomingValues0,
            &FwpsIncomingMetadataValues0,
            *mut c_void,
        ),
        context: *const c_void,
        filter: *const FwpsFilter,
        flow_context: u64,
        out: &mut FwpsClassifyOut0,
    ) {
        let (values, meta, layer_data) = args;
        let _bound = ctx::bind_classify(&self.host, self.driver, context);
        // SAFETY: the function pointer was registered by the driver (still loaded: callouts are
        // unregistered before it is unloaded); every pointer passed is valid for the call.
        unsafe {
            match self.classify {
                ClassifyFn::V0(f) => f(values, meta, layer_data, filter, flow_context, out),
                ClassifyFn::V1(f) => {
                    f(values, meta, layer_data, context, filter, flow_context, out)
                }
            }
        }
    }
}

impl Callout for CCallout {
    fn classify(
        &self,
        ctx: &ClassifyContext<'_>,
        values: &IncomingValues<'_>,
        meta: &Metadata,
        layer_data: &mut LayerData<'_>,
        filter: &RtFilter,
        flow_context: u64,
        out: &mut ClassifyOut,
    ) {
        with_scratch(|s| {
            let c_values = s.values(values);
            s.metadata(meta);
            // One match on the layer data: packet layers (most classifies) inline, the stream
            // layers' conversion out of line.
            // How the list lays out around the layerData (used again after the call).
            let pv = view(values.layer, meta);
            let (data_ptr, stream, stream_data) = match layer_data {
                LayerData::Packet(p) => (s.packet(p, pv).cast(), None, std::ptr::null()),
                LayerData::None => (std::ptr::null_mut(), None, std::ptr::null()),
                LayerData::Stream(io) => s.stream_args(io),
            };
            let inv = Invocation {
                ctx,
                meta,
                stream,
                nbl: if matches!(layer_data, LayerData::Packet(_)) {
                    data_ptr.cast()
                } else {
                    std::ptr::null_mut()
                },
                stream_data,
                references: std::cell::Cell::new(0),
            };
            let c_filter = s.filter(filter);
            let mut c_out = FwpsClassifyOut0 {
                action_type: out.action_type.0,
                out_context: out.out_context,
                filter_id: out.filter_id,
                rights: out.rights.0,
                flags: out.flags.0,
                reserved: 0,
            };
            let meta_ptr: *const FwpsIncomingMetadataValues0 = &s.meta;
            // SAFETY: `meta_ptr` points into the boxed scratch, alive for the call.
            let meta_ref = unsafe { &*meta_ptr };
            let waiter = reauth_waiter(&self.host, ctx);
            // §9.2: an out-of-band injection into this flow waits for the indication.
            let _in_classify = matches!(layer_data, LayerData::Stream(_))
                .then(|| self.host.rt.stream_gate.enter(meta.flow_handle));
            let mut call = || {
                self.call_classify(
                    (&c_values, meta_ref, data_ptr),
                    std::ptr::from_ref(&inv).cast(),
                    c_filter,
                    flow_context,
                    &mut c_out,
                );
            };
            match waiter {
                None => call(),
                Some((flow, processor)) => {
                    super::dpc::with_processor(processor, call);
                    if let Some(w) = self.host.asyncs.lock().reauth_waiters.get_mut(&flow) {
                        w.done = true;
                    }
                    self.host
                        .reauthorized
                        .store(true, std::sync::atomic::Ordering::Release);
                }
            }
            out.action_type.0 = c_out.action_type;
            out.rights = Rights(c_out.rights);
            out.flags = ClassifyOutFlags(c_out.flags);
            match layer_data {
                LayerData::Packet(p) => {
                    s.check_packet_restored(&self.host, pv.data_len(p.len()));
                    if inv.references.get() > 0 {
                        s.detach(&self.host, self.driver, (p, pv), inv.nbl as usize);
                    }
                }
                LayerData::None => {}
                LayerData::Stream(io) => s.stream_result(&self.host, io),
            }
        });
    }

    fn notify(
        &self,
        notify_type: NotifyType,
        filter_key: Option<&Guid>,
        filter: &mut RtFilter,
    ) -> Status {
        let Some(f) = self.notify else {
            return Status::SUCCESS;
        };
        let mut image = filter_image(filter);
        let key = filter_key.map(|k| CGuid {
            bytes: k.to_windows_bytes(),
        });
        let key_ptr = key.as_ref().map_or(std::ptr::null(), std::ptr::from_ref);
        let irql = ctx::irql();
        let status = {
            let _bound = ctx::bind(&self.host, self.driver, irql, "notifyFn");
            // SAFETY: the driver's notifyFn (still loaded); the key and filter image live across the
            // call.
            unsafe { f(notify_type as u32, key_ptr, &mut image.filter) }
        };
        filter.context = image.filter.context;
        Status(status as u32)
    }

    fn flow_delete(&self, layer: LayerId, callout_id: CalloutId, flow_context: u64) {
        if let Some(flows) = self
            .host
            .flows
            .lock()
            .get_mut(&(layer.0, callout_id.0, flow_context))
        {
            flows.pop();
        }
        let Some(f) = self.flow_delete else { return };
        let irql = ctx::irql();
        let _bound = ctx::bind(&self.host, self.driver, irql, "flowDeleteFn");
        // SAFETY: the driver's flowDeleteFn (still loaded).
        unsafe { f(layer.0, callout_id.0, flow_context) };
    }
}

use wfp_core::Guid;

/// `IP_ADDRESS_PREFIX` (SOCKADDR_INET + prefix length; wfp-reference §2.3 destinationPrefix).
fn prefix_to_c(addr: std::net::IpAddr, len: u8) -> IpAddressPrefix {
    let sa = super::pend::sockaddr_to_c(std::net::SocketAddr::new(addr, 0));
    let mut prefix = [0u32; 7];
    for (dst, b) in prefix.iter_mut().zip(sa.bytes.chunks_exact(4)) {
        *dst = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
    }
    IpAddressPrefix {
        prefix,
        prefix_length: len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wfp_core::catalogue::layers;

    /// The C array as (type, value) pairs.
    fn c_values(s: &mut Scratch, values: &[Value]) -> Vec<(u32, u64)> {
        let v = s.values(&IncomingValues {
            layer: layers::OUTBOUND_TRANSPORT_V4,
            values,
        });
        assert_eq!(v.value_count as usize, s.values.len());
        s.values.iter().map(|x| (x.data_type, x.value)).collect()
    }

    /// §8.2 "Data offset positions": the bytes of the IP packet behind the list's data start,
    /// by layer name (discard layers as their layer).
    #[test]
    fn data_offsets_of_the_ip_packet_layers() {
        let meta = Metadata {
            ip_header_size: 24,
            ..Metadata::default()
        };
        for (name, skip) in [
            ("INBOUND_IPPACKET_V4", 24),
            ("INBOUND_IPPACKET_V6_DISCARD", 24),
            ("OUTBOUND_IPPACKET_V4", 0),
            ("IPFORWARD_V6", 0),
            ("OUTBOUND_TRANSPORT_V4", 24),
            ("OUTBOUND_TRANSPORT_V6_DISCARD", 24),
            ("INBOUND_ICMP_ERROR_V4", 32),
            ("INBOUND_ICMP_ERROR_V6_DISCARD", 32),
            ("OUTBOUND_ICMP_ERROR_V6", 24),
            ("STREAM_V4", 0),
            ("ALE_AUTH_CONNECT_V4", 0),
        ] {
            let l = wfp_core::catalogue::layer_by_name(name).expect(name);
            assert_eq!(view(LayerId(l.id), &meta).skip, skip, "{name}");
        }
    }

    #[test]
    fn values_left_by_an_earlier_classify_are_cleared() {
        let mut s = Scratch::new();
        let set = [
            Value::Uint8(6),
            Value::Uint32(0x0a4d_0001),
            Value::Empty,
            Value::Uint16(443),
            Value::Int8(-1),
        ];
        let first = c_values(&mut s, &set);
        assert!(first.len() >= set.len());
        assert_eq!(
            &first[..5],
            &[(1, 6), (3, 0x0a4d_0001), (0, 0), (2, 443), (5, 0xff)]
        );
        assert!(first[5..].iter().all(|v| *v == (0, 0)));
        // Fewer values set, then none: nothing of the earlier call may remain.
        let second = c_values(&mut s, &[Value::Uint16(7)]);
        assert_eq!(second[0], (2, 7));
        assert!(second[1..].iter().all(|v| *v == (0, 0)), "{second:?}");
        let third = c_values(&mut s, &[Value::Empty, Value::Empty]);
        assert!(third.iter().all(|v| *v == (0, 0)), "{third:?}");
        // A value needing arena storage after trailing empties.
        let fourth = c_values(&mut s, &[Value::Empty, Value::Uint64(9)]);
        assert_eq!(fourth[0], (0, 0));
        assert_eq!(fourth[1].0, 4);
        // SAFETY: an FWP_UINT64 value points at the scratch arena's u64, alive until the next call.
        assert_eq!(unsafe { *(fourth[1].1 as *const u64) }, 9);
        assert!(fourth[2..].iter().all(|v| *v == (0, 0)));
    }

    /// processPath as C reads it: UTF-16 text without the NUL.
    fn c_path(s: &Scratch) -> String {
        let p = s.meta.process_path;
        assert!(!p.is_null());
        // SAFETY: a non-null processPath points at the scratch's blob over its UTF-16 buffer.
        let units = unsafe {
            let b = &*p;
            std::slice::from_raw_parts(b.data.cast::<u16>(), b.size as usize / 2)
        };
        String::from_utf16_lossy(&units[..units.len() - 1])
    }

    #[test]
    fn process_path_is_converted_again_for_another_path() {
        let mut s = Scratch::new();
        let a: Arc<str> = Arc::from("\\device\\a.exe");
        let meta = |p: &Arc<str>| Metadata {
            process_path: Some(p.clone()),
            ..Metadata::default()
        };
        s.metadata(&meta(&a));
        assert_eq!(c_path(&s), "\\device\\a.exe");
        // The same path again (cached), then another of the same length, then none.
        s.metadata(&meta(&a));
        assert_eq!(c_path(&s), "\\device\\a.exe");
        let b: Arc<str> = Arc::from("\\device\\b.exe");
        s.metadata(&meta(&b));
        assert_eq!(c_path(&s), "\\device\\b.exe");
        s.metadata(&Metadata::default());
        assert!(s.meta.process_path.is_null());
    }
}
