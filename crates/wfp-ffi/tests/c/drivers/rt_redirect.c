/* Redirection loop prevention and the metadata pointer fields from C (wfp-reference §2.3, §10.3):
 * a connect-redirect callout that creates a redirect handle, asks FwpsQueryConnectionRedirectState0
 * about inMetaValues->redirectRecords before redirecting (the WDK's proxy pattern), and logs every
 * pointer field of the metadata with its FWPS_METADATA_FIELD_* bit. Driven by async_api.rs
 * (redirect_handles_and_metadata_pointers). */
#include <ntddk.h>
#include <initguid.h>
#include <fwpsk.h>
DEFINE_GUID(K_REDIR, 0xa1a1a1a1, 0x0001, 0x4000, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x31);
DEFINE_GUID(K_PROVIDER, 0xa1a1a1a1, 0x0001, 0x4000, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x32);
static PDEVICE_OBJECT dev;
static UINT32 id;
static HANDLE rh;
static int calls;

static void LogPointers(const FWPS_INCOMING_METADATA_VALUES0 *m)
{
    BOOLEAN has;
    has = FWPS_IS_METADATA_FIELD_PRESENT(m, FWPS_METADATA_FIELD_TRANSPORT_CONTROL_DATA);
    if (has && m->controlData != NULL)
        DbgPrint("control %lu len %Iu level %d type %d\n", m->controlDataLength, m->controlData->cmsg_len,
                 m->controlData->cmsg_level, m->controlData->cmsg_type);
    else DbgPrint("control none %d %d\n", has, m->controlData == NULL);
    has = FWPS_IS_METADATA_FIELD_PRESENT(m, FWPS_METADATA_FIELD_TRANSPORT_HEADER_INCLUDE_HEADER);
    if (has && m->headerIncludeHeader != NULL)
        DbgPrint("hdrincl %lu first %#x\n", m->headerIncludeHeaderLength, *(const UCHAR *)m->headerIncludeHeader);
    else DbgPrint("hdrincl none %d %d\n", has, m->headerIncludeHeader == NULL);
    has = FWPS_IS_METADATA_FIELD_PRESENT(m, FWPS_METADATA_FIELD_DESTINATION_PREFIX);
    if (has) {
        const UCHAR *a = (const UCHAR *)&m->destinationPrefix.Prefix.Ipv4.sin_addr;
        DbgPrint("prefix %u %u.%u.%u.%u/%u\n", m->destinationPrefix.Prefix.si_family, a[0], a[1], a[2], a[3],
                 m->destinationPrefix.PrefixLength);
    } else DbgPrint("prefix none %u\n", m->destinationPrefix.PrefixLength);
    has = FWPS_IS_METADATA_FIELD_PRESENT(m, FWPS_METADATA_FIELD_ORIGINAL_DESTINATION);
    if (has && m->originalDestination != NULL && m->originalDestination->sa_family == AF_INET) {
        const SOCKADDR_IN *o = (const SOCKADDR_IN *)m->originalDestination;
        const UCHAR *a = (const UCHAR *)&o->sin_addr;
        DbgPrint("original %u.%u.%u.%u:%u\n", a[0], a[1], a[2], a[3], RtlUshortByteSwap(o->sin_port));
    } else DbgPrint("original none %d %d\n", has, m->originalDestination == NULL);
}

static void NTAPI Connect(const FWPS_INCOMING_VALUES0 *v, const FWPS_INCOMING_METADATA_VALUES0 *m, void *d,
                          const void *cc, const FWPS_FILTER3 *f, UINT64 fc, FWPS_CLASSIFY_OUT0 *out)
{
    void *rc = (void *)1;
    UINT64 h = 0;
    FWPS_CONNECT_REQUEST0 *req = NULL;
    BOOLEAN has = FWPS_IS_METADATA_FIELD_PRESENT(m, FWPS_METADATA_FIELD_REDIRECT_RECORD_HANDLE);
    FWPS_CONNECTION_REDIRECT_STATE st = FwpsQueryConnectionRedirectState0(m->redirectRecords, rh, &rc);
    DbgPrint("state %d records %d %d context %s\n", st, has, m->redirectRecords != NULL,
             rc == NULL ? "-" : (const char *)rc);
    LogPointers(m);
    if (calls++ == 0) {
        /* Records this classify never handed out: refused (a Verifier finding), NOT_REDIRECTED. */
        DbgPrint("forged %d\n", FwpsQueryConnectionRedirectState0((HANDLE)&calls, rh, NULL));
    }
    if (st == FWPS_CONNECTION_REDIRECTED_BY_SELF || st == FWPS_CONNECTION_PREVIOUSLY_REDIRECTED_BY_SELF) {
        out->actionType = FWP_ACTION_PERMIT; /* already ours: do not redirect again (no loop) */
        return;
    }
    NTSTATUS s = FwpsAcquireClassifyHandle0((void *)cc, 0, &h);
    if (NT_SUCCESS(s)) s = FwpsAcquireWritableLayerDataPointer0(h, f->filterId, 0, (PVOID *)&req, out);
    if (!NT_SUCCESS(s)) { DbgPrint("acquire %#x\n", s); return; }
    ((SOCKADDR_IN *)&req->remoteAddressAndPort)->sin_port = RtlUshortByteSwap(9100);
    req->localRedirectHandle = rh;
    char *c = (char *)ExAllocatePool2(POOL_FLAG_NON_PAGED, 16, 'xtcR');
    if (c != NULL) RtlCopyMemory(c, "mine", 5);
    req->localRedirectContext = c;
    req->localRedirectContextSize = 16;
    FwpsApplyModifiedLayerData0(h, req, 0);
    FwpsReleaseClassifyHandle0(h);
    out->actionType = FWP_ACTION_PERMIT;
}
static NTSTATUS NTAPI Notify(FWPS_CALLOUT_NOTIFY_TYPE t, const GUID *k, FWPS_FILTER3 *f) { return STATUS_SUCCESS; }
static void Unload(PDRIVER_OBJECT d)
{
    FwpsCalloutUnregisterById0(id);
    FwpsRedirectHandleDestroy0(rh);
    FwpsRedirectHandleDestroy0(rh); /* destroyed already: a Verifier finding */
    IoDeleteDevice(dev);
}
NTSTATUS DriverEntry(PDRIVER_OBJECT d, PUNICODE_STRING r)
{
    FWPS_CALLOUT3 c = { 0 };
    HANDLE none = NULL;
    d->DriverUnload = Unload;
    DbgPrint("create null %#x\n", FwpsRedirectHandleCreate0(&K_PROVIDER, 0, NULL));
    DbgPrint("create flags %#x\n", FwpsRedirectHandleCreate0(&K_PROVIDER, 1, &none));
    NTSTATUS s = FwpsRedirectHandleCreate0(&K_PROVIDER, 0, &rh);
    DbgPrint("create %#x %d\n", s, rh != NULL);
    HANDLE leaked = NULL; /* never destroyed: the host destroys it at unload (a finding) */
    if (NT_SUCCESS(s)) s = FwpsRedirectHandleCreate0(&K_PROVIDER, 0, &leaked);
    DbgPrint("leaked %I64x\n", (UINT64)(ULONG_PTR)leaked);
    if (NT_SUCCESS(s)) s = IoCreateDevice(d, 0, NULL, FILE_DEVICE_NETWORK, 0, FALSE, &dev);
    c.calloutKey = K_REDIR;
    c.classifyFn = Connect;
    c.notifyFn = Notify;
    if (NT_SUCCESS(s)) s = FwpsCalloutRegister3(dev, &c, &id);
    return s;
}
