//! The run-time callout API (`FWPS_CALLOUT0..3`, wfp-reference §1–4): the [`Callout`] trait a callout
//! implements, its [`CalloutRegistration`], and the structures passed to `classifyFn`
//! ([`IncomingValues`], [`Metadata`], [`LayerData`], [`ClassifyOut`]).
//!
//! Callbacks run on the classify hot path, possibly on many threads at once: they must not block and
//! must return quickly (the kernel's `IRQL <= DISPATCH_LEVEL` rule, §12). A callout that panics is
//! contained by the engine and treated as unregistered for that classify (brief decision 4).

use std::sync::Arc;

use crate::catalogue::{self, LayerId};
use crate::constants::{
    ActionType, CalloutFlags, ClassifyOutFlags, Direction, MetadataFields, NotifyType, Rights,
    StreamAction, StreamFlags,
};
use crate::engine::Engine;
use crate::filter::{CalloutId, RtFilter};
use crate::guid::Guid;
use crate::status::Status;
use crate::value::Value;

/// A callout's functions. `classify` is `classifyFn`, `notify` is `notifyFn`, `flow_delete` is
/// `flowDeleteFn` (only called when the registration says it has one).
pub trait Callout: Send + Sync {
    /// `classifyFn`: called for data matching a filter whose action references this callout.
    #[expect(
        clippy::too_many_arguments,
        reason = "mirrors FWPS_CALLOUT_CLASSIFY_FN1's parameter list"
    )]
    fn classify(
        &self,
        ctx: &ClassifyContext<'_>,
        values: &IncomingValues<'_>,
        meta: &Metadata,
        layer_data: &mut LayerData<'_>,
        filter: &RtFilter,
        flow_context: u64,
        out: &mut ClassifyOut,
    );

    /// `notifyFn`: filter add (before it is active; an error refuses the filter), delete (always
    /// honoured), and post-commit add. Unknown types must be answered with success.
    fn notify(
        &self,
        notify_type: NotifyType,
        filter_key: Option<&Guid>,
        filter: &mut RtFilter,
    ) -> Status {
        let _ = (notify_type, filter_key, filter);
        Status::SUCCESS
    }

    /// `flowDeleteFn`: the flow ended or the context was removed; called once per context.
    fn flow_delete(&self, layer: LayerId, callout_id: CalloutId, flow_context: u64) {
        let _ = (layer, callout_id, flow_context);
    }
}

/// `FWPS_CALLOUTn`: what `FwpsCalloutRegister` receives.
#[derive(Clone)]
pub struct CalloutRegistration {
    /// `calloutKey`.
    pub key: Guid,
    /// `flags` (FWP_CALLOUT_FLAG_*).
    pub flags: CalloutFlags,
    /// The functions.
    pub callout: Arc<dyn Callout>,
    /// Whether `flowDeleteFn` is non-NULL (contexts can only be associated when it is).
    pub flow_delete: bool,
}

impl CalloutRegistration {
    /// A registration with a flowDeleteFn.
    pub fn new(key: Guid, flags: CalloutFlags, callout: Arc<dyn Callout>) -> Self {
        Self {
            key,
            flags,
            callout,
            flow_delete: true,
        }
    }
}

/// Passed to every `classifyFn`: the engine (for the flow-context, pend, injection and redirect
/// APIs) and the invocation's identity — what WFP's opaque `classifyContext` (classifyFn1+) stands
/// for. It lives only for the call: [`ClassifyContext::acquire_classify_handle`] is how a callout
/// keeps a reference to the classify past it (§10.2).
pub struct ClassifyContext<'a> {
    pub(crate) engine: &'a Engine,
    pub(crate) callout_id: CalloutId,
    pub(crate) layer: LayerId,
    pub(crate) filter_id: crate::filter::FilterId,
    pub(crate) flow: Option<u64>,
    /// Unique per classifyFn invocation (ties classify handles and redirect results to it).
    pub(crate) token: u64,
    /// The incoming values (for the IS_REAUTHORIZE check).
    pub(crate) values: &'a [Value],
    /// The connect/bind request of a redirect-layer classify ([`Engine::classify_redirect`]).
    pub(crate) redirect: Option<&'a crate::redirect::RedirectRequest>,
    /// Set when the callout acquired a classify handle during the call.
    pub(crate) acquired: std::cell::Cell<bool>,
}

impl ClassifyContext<'_> {
    /// The engine, for `FwpsFlowAssociateContext0` and friends.
    pub fn engine(&self) -> &Engine {
        self.engine
    }
    /// This callout's run-time id.
    pub fn callout_id(&self) -> CalloutId {
        self.callout_id
    }
    /// The layer being classified.
    pub fn layer(&self) -> LayerId {
        self.layer
    }
    /// The filter that invoked the callout.
    pub fn filter_id(&self) -> crate::filter::FilterId {
        self.filter_id
    }
    /// The flow handle, at a flow-capable layer whose metadata carried one.
    pub fn flow(&self) -> Option<u64> {
        self.flow
    }
    /// True inside a reauthorization classify (FLAGS has FWP_CONDITION_FLAG_IS_REAUTHORIZE).
    pub fn is_reauthorization(&self) -> bool {
        crate::classify::is_reauthorize(self.layer, self.values)
    }
}

/// `FWPS_INCOMING_VALUES0`: the layer id and its values in `FWPS_FIELD_*` order.
#[derive(Clone, Copy, Debug)]
pub struct IncomingValues<'a> {
    /// `layerId`.
    pub layer: LayerId,
    /// `incomingValue[]` (missing trailing entries read as FWP_EMPTY).
    pub values: &'a [Value],
}

impl<'a> IncomingValues<'a> {
    /// The value at a field index.
    pub fn get(&self, index: usize) -> &'a Value {
        self.values.get(index).unwrap_or(&Value::Empty)
    }
    /// The value of a named field (FWPS field name or condition name).
    pub fn by_name(&self, name: &str) -> &'a Value {
        catalogue::layer(self.layer)
            .and_then(|l| l.field_index_by_name(name))
            .map_or(&Value::Empty, |i| self.get(i))
    }
}

/// `FWPS_INBOUND_FRAGMENT_METADATA0`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragmentMetadata {
    /// `fragmentIdentification`.
    pub identification: u32,
    /// `fragmentOffset` (bytes).
    pub offset: u16,
    /// `fragmentLength`.
    pub length: u32,
}

/// `FWPS_INCOMING_METADATA_VALUES0`, the fields this engine's shims fill. Only fields whose bit is
/// set in `present` are valid.
#[derive(Clone, Debug, Default)]
pub struct Metadata {
    /// `currentMetadataValues`.
    pub present: MetadataFields,
    /// `flowHandle`.
    pub flow_handle: u64,
    /// `ipHeaderSize`.
    pub ip_header_size: u32,
    /// `transportHeaderSize`.
    pub transport_header_size: u32,
    /// `processPath`.
    pub process_path: Option<Arc<str>>,
    /// `processId`.
    pub process_id: u64,
    /// `sourceInterfaceIndex`.
    pub source_interface_index: u32,
    /// `destinationInterfaceIndex`.
    pub destination_interface_index: u32,
    /// `compartmentId`.
    pub compartment_id: u32,
    /// `fragmentMetadata`.
    pub fragment: FragmentMetadata,
    /// `packetDirection`.
    pub packet_direction: Option<Direction>,
    /// `icmpIdAndSequence`.
    pub icmp_id_and_sequence: u32,
    /// `frameLength`.
    pub frame_length: u16,
    /// `discardMetadata.filterId` (discard layers).
    pub discard_filter_id: u64,
    /// `discardMetadata.discardModule` (FWPS_DISCARD_MODULE0: NETWORK 0, TRANSPORT 1, GENERAL 2).
    pub discard_module: u32,
    /// `discardMetadata.discardReason`.
    pub discard_reason: u32,
    /// `flags` (FWPS_INCOMING_FLAG_*; engine-internal in WFP, set by the data path here).
    pub incoming_flags: u32,
    /// `token`: the process's access token, as an opaque id (TOKEN).
    pub token: u64,
    /// `pathMtu` (PATH_MTU).
    pub path_mtu: u32,
    /// `completionHandle` (COMPLETION_HANDLE): the argument of
    /// [`Engine::pend_operation`](crate::Engine::pend_operation), minted by the data path with
    /// [`Engine::new_completion_handle`](crate::Engine::new_completion_handle).
    pub completion_handle: u64,
    /// `transportEndpointHandle` (TRANSPORT_ENDPOINT_HANDLE).
    pub transport_endpoint_handle: u64,
    /// `remoteScopeId` (REMOTE_SCOPE_ID): the IPv6 scope (zone) of the remote address.
    pub remote_scope_id: u32,
    /// `controlData` / `controlDataLength` (TRANSPORT_CONTROL_DATA): the socket's ancillary data.
    pub control_data: Option<Arc<[u8]>>,
    /// `headerIncludeHeader` (TRANSPORT_HEADER_INCLUDE_HEADER): the header of a raw send.
    pub header_include_header: Option<Arc<[u8]>>,
    /// `destinationPrefix` (DESTINATION_PREFIX): the route's prefix (address bytes, prefix length).
    pub destination_prefix: Option<(std::net::IpAddr, u8)>,
    /// `parentEndpointHandle` (PARENT_ENDPOINT_HANDLE).
    pub parent_endpoint_handle: u64,
    /// `localRedirectTargetPID` (LOCAL_REDIRECT_TARGET_PID).
    pub local_redirect_target_pid: u32,
    /// `originalDestination` (ORIGINAL_DESTINATION): before a connect redirect.
    pub original_destination: Option<std::net::SocketAddr>,
    /// `redirectRecords` (REDIRECT_RECORD_HANDLE): who redirected this connection (§10.3), the
    /// input of [`Engine::query_connection_redirect_state`](crate::Engine::query_connection_redirect_state).
    pub redirect_records: Option<Arc<crate::redirect::RedirectRecords>>,
    /// `subProcessTag` (SUB_PROCESS_TAG).
    pub sub_process_tag: u64,
    /// The injection tag of an injected packet (what WFP keeps on the NET_BUFFER_LIST), the input
    /// of [`Engine::query_packet_injection_state`](crate::Engine::query_packet_injection_state).
    /// Set by the data path when it classifies a packet it took from
    /// [`Engine::poll_injection`](crate::Engine::poll_injection); not a `currentMetadataValues` bit.
    pub injection: Option<Arc<crate::inject::Provenance>>,
    /// The bytes of the packet before the layer's data offset — at the inbound layers whose
    /// layerData starts at the transport payload, the IP and transport headers
    /// (`ipHeaderSize + transportHeaderSize` bytes). Not a `currentMetadataValues` field: WFP keeps
    /// them in the NET_BUFFER behind its data start, where `NdisRetreatNetBufferDataStart` reaches
    /// them; here a clone ([`ClassifyContext::clone_packet`]) or reference
    /// ([`ClassifyContext::reference_packet`]) of the indicated packet carries them, and
    /// [`Engine::retreat_packet`](crate::Engine::retreat_packet) reaches them. Set by the data path.
    pub header_bytes: Option<Arc<[u8]>>,
}

impl Metadata {
    /// `FWPS_IS_METADATA_FIELD_PRESENT`.
    pub fn has(&self, field: MetadataFields) -> bool {
        self.present.contains(field)
    }

    /// The flow handle when the FLOW_HANDLE bit is set.
    pub fn flow(&self) -> Option<u64> {
        self.has(MetadataFields::FLOW_HANDLE)
            .then_some(self.flow_handle)
    }
}

/// `FWPS_STREAM_DATA0` (flattened: the indicated bytes are one contiguous slice).
#[derive(Clone, Copy, Debug)]
pub struct StreamData<'a> {
    /// `flags` (FWPS_STREAM_FLAG_*).
    pub flags: StreamFlags,
    /// The indicated bytes (`dataLength` = `data.len()`).
    pub data: &'a [u8],
}

/// `FWPS_STREAM_CALLOUT_IO_PACKET0`: the stream layer's `layerData`.
#[derive(Clone, Copy, Debug)]
pub struct StreamIoPacket<'a> {
    /// `streamData` (in).
    pub stream_data: StreamData<'a>,
    /// `missedBytes` (in).
    pub missed_bytes: u64,
    /// `countBytesRequired` (out, with NEED_MORE_DATA): the *total* bytes to accumulate before the
    /// next indication (brief decision 8).
    pub count_bytes_required: u32,
    /// `countBytesEnforced` (out): leading bytes the verdict applies to.
    pub count_bytes_enforced: u64,
    /// `streamAction` (out).
    pub stream_action: StreamAction,
}

impl<'a> StreamIoPacket<'a> {
    /// An indication of `data` with the given flags; outputs zeroed.
    pub fn new(flags: StreamFlags, data: &'a [u8]) -> Self {
        Self {
            stream_data: StreamData { flags, data },
            missed_bytes: 0,
            count_bytes_required: 0,
            count_bytes_enforced: 0,
            stream_action: StreamAction::None,
        }
    }
}

/// `layerData`: what the layer passes along (§2.2).
#[derive(Debug, Default)]
pub enum LayerData<'a> {
    /// NULL (for example ALE_AUTH_CONNECT for TCP).
    #[default]
    None,
    /// The packet (a NET_BUFFER_LIST), starting at the layer's data offset.
    Packet(&'a [u8]),
    /// The stream layer's I/O packet.
    Stream(StreamIoPacket<'a>),
}

/// `FWPS_CLASSIFY_OUT0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassifyOut {
    /// `actionType`: preset to the current decision (CONTINUE when there is none yet).
    pub action_type: ActionType,
    /// `outContext` (reserved).
    pub out_context: u64,
    /// `filterId` (reserved).
    pub filter_id: u64,
    /// `rights` (FWPS_RIGHT_ACTION_WRITE).
    pub rights: Rights,
    /// `flags` (FWPS_CLASSIFY_OUT_FLAG_*).
    pub flags: ClassifyOutFlags,
}

impl ClassifyOut {
    /// True when the callout may change `action_type` (rule 2.6-1).
    pub fn can_write(&self) -> bool {
        self.rights.contains(Rights::ACTION_WRITE)
    }

    /// Clears FWPS_RIGHT_ACTION_WRITE (rule 2.6-2).
    pub fn clear_write(&mut self) {
        self.rights.0 &= !Rights::ACTION_WRITE.0;
    }
}
