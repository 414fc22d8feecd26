/* A management program written against WFP's user-mode API (fwpmu.h), run against a real wfpd
 * API socket ($WFPD_SOCKET) by tests/c_client.rs: opens a session, adds a provider, sublayer,
 * callout and filter in one transaction, checks the transaction rules, enumerates what it added
 * (templates, chunks, FwpmFreeMemory0), receives a net event through FwpmNetEventSubscribe0,
 * enumerates it (FwpmNetEventCreateEnumHandle0 with matching and non-matching templates),
 * deletes everything and checks it is gone. Prints "FILTER <id>", "SUBSCRIBED", "EVENT ...",
 * "ENUMERATED <n>" and
 * finally "OK"; any failed check prints "FAIL ..." and exits 1. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "initguid.h" /* this file defines the FWPM_* GUIDs, as on Windows */
#include "fwpmu.h"

_Static_assert(sizeof(FWPM_FILTER0) == 200, "FWPM_FILTER0 layout");
_Static_assert(sizeof(FWPM_FILTER_CONDITION0) == 40, "FWPM_FILTER_CONDITION0 layout");
_Static_assert(sizeof(FWPM_PROVIDER0) == 64, "FWPM_PROVIDER0 layout");
_Static_assert(sizeof(FWPM_SUBLAYER0) == 72, "FWPM_SUBLAYER0 layout");
_Static_assert(sizeof(FWPM_CALLOUT0) == 88, "FWPM_CALLOUT0 layout");
_Static_assert(sizeof(FWPM_SESSION0) == 72, "FWPM_SESSION0 layout");
_Static_assert(sizeof(FWPM_NET_EVENT_HEADER0) == 88, "FWPM_NET_EVENT_HEADER0 layout");
_Static_assert(sizeof(FWPM_NET_EVENT_ENUM_TEMPLATE0) == 32, "FWPM_NET_EVENT_ENUM_TEMPLATE0 layout");
_Static_assert(sizeof(FWPM_NET_EVENT0) == 104, "FWPM_NET_EVENT0 layout");

#define CHECK(cond, ...)                                                                          \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            printf("FAIL line %d: ", __LINE__);                                                   \
            printf(__VA_ARGS__);                                                                  \
            printf("\n");                                                                         \
            exit(1);                                                                              \
        }                                                                                         \
    } while (0)
#define OK(call)                                                                                  \
    do {                                                                                          \
        DWORD rc_ = (call);                                                                       \
        CHECK(rc_ == ERROR_SUCCESS, "%s = 0x%08x", #call, (unsigned)rc_);                         \
    } while (0)

static const GUID PROVIDER = {0x6d1a7c2e, 0x1b3f, 0x4a50, {0x9e, 0x11, 0x20, 0x31, 0x42, 0x53, 0x64, 0x75}};
static const GUID SUBLAYER = {0x6d1a7c2f, 0x1b3f, 0x4a50, {0x9e, 0x11, 0x20, 0x31, 0x42, 0x53, 0x64, 0x76}};
static const GUID CALLOUT = {0x6d1a7c30, 0x1b3f, 0x4a50, {0x9e, 0x11, 0x20, 0x31, 0x42, 0x53, 0x64, 0x77}};
static const GUID FILTER = {0x6d1a7c31, 0x1b3f, 0x4a50, {0x9e, 0x11, 0x20, 0x31, 0x42, 0x53, 0x64, 0x78}};

struct seen {
    atomic_int count;
    UINT32 type;
    UINT64 filter_id;
    UINT16 layer_id;
    UINT16 remote_port;
};

static void CALLBACK on_event(void *context, const FWPM_NET_EVENT0 *event) {
    struct seen *s = context;
    if (atomic_load(&s->count) == 0) {
        s->type = event->type;
        s->filter_id = event->classifyDrop ? event->classifyDrop->filterId : 0;
        s->layer_id = event->classifyDrop ? event->classifyDrop->layerId : 0;
        s->remote_port = event->header.remotePort;
    }
    atomic_fetch_add(&s->count, 1);
}

static int wide_eq(const WCHAR *a, const WCHAR *b) {
    if (!a || !b) return a == b;
    while (*a && *a == *b) a++, b++;
    return *a == *b;
}

static void add_objects(HANDLE h, UINT64 *filter_id, UINT32 *callout_id) {
    FWPM_PROVIDER0 provider = {0};
    provider.providerKey = PROVIDER;
    provider.displayData.name = L"c provider";
    provider.serviceName = L"cclient";
    FWPM_SUBLAYER0 sublayer = {0};
    sublayer.subLayerKey = SUBLAYER;
    sublayer.displayData.name = L"c sublayer";
    sublayer.providerKey = (GUID *)&PROVIDER;
    sublayer.weight = 0x100;
    FWPM_CALLOUT0 callout = {0};
    callout.calloutKey = CALLOUT;
    callout.displayData.name = L"c callout";
    callout.providerKey = (GUID *)&PROVIDER;
    callout.applicableLayer = FWPM_LAYER_ALE_AUTH_CONNECT_V4;

    FWP_V4_ADDR_AND_MASK net = {0x0A000000, 0xFF000000}; /* 10.0.0.0/8, host order */
    FWPM_FILTER_CONDITION0 conds[2];
    memset(conds, 0, sizeof conds);
    conds[0].fieldKey = FWPM_CONDITION_IP_REMOTE_PORT;
    conds[0].matchType = FWP_MATCH_EQUAL;
    conds[0].conditionValue.type = FWP_UINT16;
    conds[0].conditionValue.uint16 = 23;
    conds[1].fieldKey = FWPM_CONDITION_IP_REMOTE_ADDRESS;
    conds[1].matchType = FWP_MATCH_EQUAL;
    conds[1].conditionValue.type = FWP_V4_ADDR_MASK;
    conds[1].conditionValue.v4AddrMask = &net;
    UINT64 exact = 0x1234;
    FWPM_FILTER0 filter = {0};
    filter.filterKey = FILTER;
    filter.displayData.name = L"c filter";
    filter.displayData.description = L"no telnet to 10/8";
    filter.providerKey = (GUID *)&PROVIDER;
    filter.layerKey = FWPM_LAYER_ALE_AUTH_CONNECT_V4;
    filter.subLayerKey = SUBLAYER;
    filter.weight.type = FWP_UINT64;
    filter.weight.uint64 = &exact;
    filter.numFilterConditions = 2;
    filter.filterCondition = conds;
    filter.action.type = FWP_ACTION_BLOCK;

    OK(FwpmTransactionBegin0(h, 0));
    DWORD again = FwpmTransactionBegin0(h, 0);
    CHECK(again == FWP_E_TXN_IN_PROGRESS, "second begin = 0x%08x", (unsigned)again);
    OK(FwpmProviderAdd0(h, &provider, NULL));
    OK(FwpmSubLayerAdd0(h, &sublayer, NULL));
    OK(FwpmCalloutAdd0(h, &callout, NULL, callout_id));
    OK(FwpmFilterAdd0(h, &filter, NULL, filter_id));
    OK(FwpmTransactionCommit0(h));
    DWORD none = FwpmTransactionCommit0(h);
    CHECK(none == FWP_E_NO_TXN_IN_PROGRESS, "commit without txn = 0x%08x", (unsigned)none);
    DWORD dup = FwpmFilterAdd0(h, &filter, NULL, NULL);
    CHECK(dup == FWP_E_ALREADY_EXISTS, "duplicate filter = 0x%08x", (unsigned)dup);
    CHECK(*filter_id != 0 && *callout_id != 0, "ids %llu %u", (unsigned long long)*filter_id, *callout_id);
}

/* Enumerates the filters at ALE_AUTH_CONNECT_V4 one by one; returns how many are ours (and checks
 * ours field by field). */
static int count_our_filters(HANDLE h, UINT64 filter_id) {
    FWPM_FILTER_ENUM_TEMPLATE0 t = {0};
    t.layerKey = FWPM_LAYER_ALE_AUTH_CONNECT_V4;
    t.actionMask = 0xFFFFFFFF;
    HANDLE e = NULL;
    OK(FwpmFilterCreateEnumHandle0(h, &t, &e));
    int ours = 0;
    for (;;) {
        FWPM_FILTER0 **entries = NULL;
        UINT32 n = 0;
        OK(FwpmFilterEnum0(h, e, 1, &entries, &n));
        if (n == 0) break;
        CHECK(n == 1 && entries && entries[0], "chunk of %u", n);
        const FWPM_FILTER0 *f = entries[0];
        if (IsEqualGUID(&f->filterKey, &FILTER)) {
            ours++;
            CHECK(f->filterId == filter_id, "filterId %llu", (unsigned long long)f->filterId);
            CHECK(wide_eq(f->displayData.name, L"c filter"), "name");
            /* The daemon's filter listing does not carry descriptions yet (FilterView): NULL. */
            CHECK(!f->displayData.description || wide_eq(f->displayData.description, L"no telnet to 10/8"),
                  "description");
            CHECK(IsEqualGUID(&f->subLayerKey, &SUBLAYER), "sublayer");
            CHECK(f->providerKey && IsEqualGUID(f->providerKey, &PROVIDER), "provider");
            CHECK(f->action.type == FWP_ACTION_BLOCK, "action 0x%x", f->action.type);
            CHECK(f->effectiveWeight.type == FWP_UINT64 && *f->effectiveWeight.uint64 == 0x1234, "weight");
            CHECK(f->numFilterConditions == 2, "%u conditions", f->numFilterConditions);
            for (UINT32 i = 0; i < 2; i++) {
                const FWPM_FILTER_CONDITION0 *c = &f->filterCondition[i];
                if (IsEqualGUID(&c->fieldKey, &FWPM_CONDITION_IP_REMOTE_PORT)) {
                    CHECK(c->conditionValue.type == FWP_UINT16 && c->conditionValue.uint16 == 23, "port");
                } else {
                    CHECK(IsEqualGUID(&c->fieldKey, &FWPM_CONDITION_IP_REMOTE_ADDRESS), "field");
                    CHECK(c->conditionValue.type == FWP_V4_ADDR_MASK &&
                              c->conditionValue.v4AddrMask->addr == 0x0A000000 &&
                              c->conditionValue.v4AddrMask->mask == 0xFF000000,
                          "address");
                }
            }
        }
        FwpmFreeMemory0((void **)&entries);
        CHECK(entries == NULL, "FwpmFreeMemory0 clears the pointer");
    }
    OK(FwpmFilterDestroyEnumHandle0(h, e));
    return ours;
}

/* How many times our filter (port 23 to 10.0.0.0/8) is enumerated by a template with conditions
 * (section 11.4 FWP_FILTER_ENUM_TYPE). */
static int count_by_template(HANDLE h, FWP_FILTER_ENUM_TYPE type, UINT16 port, UINT32 *addr) {
    FWPM_FILTER_CONDITION0 c[2];
    memset(c, 0, sizeof(c));
    c[0].fieldKey = FWPM_CONDITION_IP_REMOTE_PORT;
    c[0].matchType = FWP_MATCH_EQUAL;
    c[0].conditionValue.type = FWP_UINT16;
    c[0].conditionValue.uint16 = port;
    c[1].fieldKey = FWPM_CONDITION_IP_REMOTE_ADDRESS;
    c[1].matchType = FWP_MATCH_EQUAL;
    c[1].conditionValue.type = FWP_UINT32;
    c[1].conditionValue.uint32 = addr ? *addr : 0;
    FWPM_FILTER_ENUM_TEMPLATE0 t = {0};
    t.layerKey = FWPM_LAYER_ALE_AUTH_CONNECT_V4;
    t.actionMask = 0xFFFFFFFF;
    t.enumType = type;
    t.numFilterConditions = addr ? 2 : 1;
    t.filterCondition = c;
    HANDLE e = NULL;
    OK(FwpmFilterCreateEnumHandle0(h, &t, &e));
    FWPM_FILTER0 **entries = NULL;
    UINT32 n = 0;
    OK(FwpmFilterEnum0(h, e, 100, &entries, &n));
    int ours = 0;
    for (UINT32 i = 0; i < n; i++) {
        if (IsEqualGUID(&entries[i]->filterKey, &FILTER)) ours++;
    }
    FwpmFreeMemory0((void **)&entries);
    OK(FwpmFilterDestroyEnumHandle0(h, e));
    return ours;
}

static void check_templates(HANDLE h) {
    UINT32 inside = 0x0A010203; /* 10.1.2.3 */
    UINT32 outside = 0xC0A80001; /* 192.168.0.1 */
    CHECK(count_by_template(h, FWP_FILTER_ENUM_FULLY_CONTAINED, 23, &inside) == 1, "contained");
    CHECK(count_by_template(h, FWP_FILTER_ENUM_FULLY_CONTAINED, 23, &outside) == 0, "outside");
    /* Only the port: the filter also restricts the address, so it overlaps but does not contain. */
    CHECK(count_by_template(h, FWP_FILTER_ENUM_FULLY_CONTAINED, 23, NULL) == 0, "port only, contained");
    CHECK(count_by_template(h, FWP_FILTER_ENUM_OVERLAPPING, 23, NULL) == 1, "port only, overlapping");
    CHECK(count_by_template(h, FWP_FILTER_ENUM_OVERLAPPING, 80, NULL) == 0, "other port");
    FWPM_FILTER_ENUM_TEMPLATE0 bad = {0};
    bad.layerKey = FWPM_LAYER_ALE_AUTH_CONNECT_V4;
    bad.enumType = FWP_FILTER_ENUM_TYPE_MAX;
    bad.actionMask = 0xFFFFFFFF;
    HANDLE e = NULL;
    DWORD r = FwpmFilterCreateEnumHandle0(h, &bad, &e);
    CHECK(r == FWP_E_INVALID_ENUMERATOR, "enumType MAX = 0x%08x", (unsigned)r);
}

static void check_other_listings(HANDLE h, UINT32 callout_id) {
    HANDLE e = NULL;
    UINT32 n = 0;
    int found = 0;
    FWPM_PROVIDER0 **providers = NULL;
    OK(FwpmProviderCreateEnumHandle0(h, NULL, &e));
    OK(FwpmProviderEnum0(h, e, 100, &providers, &n));
    for (UINT32 i = 0; i < n; i++)
        found += IsEqualGUID(&providers[i]->providerKey, &PROVIDER) &&
                 wide_eq(providers[i]->serviceName, L"cclient");
    FwpmFreeMemory0((void **)&providers);
    OK(FwpmProviderDestroyEnumHandle0(h, e));
    CHECK(found == 1, "provider listed %d times", found);

    FWPM_SUBLAYER0 **sublayers = NULL;
    found = 0;
    /* The template keeps the provider's sublayers only (the built-in ones have none). */
    FWPM_SUBLAYER_ENUM_TEMPLATE0 st = {(GUID *)&PROVIDER};
    OK(FwpmSubLayerCreateEnumHandle0(h, &st, &e));
    OK(FwpmSubLayerEnum0(h, e, 100, &sublayers, &n));
    CHECK(n == 1, "%u sublayers of the provider", n);
    for (UINT32 i = 0; i < n; i++)
        found += IsEqualGUID(&sublayers[i]->subLayerKey, &SUBLAYER) && sublayers[i]->weight == 0x100;
    FwpmFreeMemory0((void **)&sublayers);
    OK(FwpmSubLayerDestroyEnumHandle0(h, e));
    CHECK(found == 1, "sublayer listed %d times", found);

    FWPM_CALLOUT0 **callouts = NULL;
    found = 0;
    FWPM_CALLOUT_ENUM_TEMPLATE0 ct = {(GUID *)&PROVIDER, FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V4};
    OK(FwpmCalloutCreateEnumHandle0(h, &ct, &e));
    OK(FwpmCalloutEnum0(h, e, 100, &callouts, &n));
    CHECK(n == 0, "%u callouts of the provider at another layer", n);
    OK(FwpmCalloutDestroyEnumHandle0(h, e));
    ct.layerKey = FWPM_LAYER_ALE_AUTH_CONNECT_V4;
    OK(FwpmCalloutCreateEnumHandle0(h, &ct, &e));
    OK(FwpmCalloutEnum0(h, e, 100, &callouts, &n));
    for (UINT32 i = 0; i < n; i++)
        found += IsEqualGUID(&callouts[i]->calloutKey, &CALLOUT) && callouts[i]->calloutId == callout_id &&
                 IsEqualGUID(&callouts[i]->applicableLayer, &FWPM_LAYER_ALE_AUTH_CONNECT_V4);
    FwpmFreeMemory0((void **)&callouts);
    OK(FwpmCalloutDestroyEnumHandle0(h, e));
    CHECK(found == 1, "callout listed %d times", found);
}

/* A net-event template asking for one remote port (section 11.5); `c` holds its condition. */
static FWPM_NET_EVENT_ENUM_TEMPLATE0 port_template(UINT16 port, FWPM_FILTER_CONDITION0 *c) {
    memset(c, 0, sizeof *c);
    c->fieldKey = FWPM_CONDITION_IP_REMOTE_PORT;
    c->matchType = FWP_MATCH_EQUAL;
    c->conditionValue.type = FWP_UINT16;
    c->conditionValue.uint16 = port;
    FWPM_NET_EVENT_ENUM_TEMPLATE0 t;
    memset(&t, 0, sizeof t);
    t.numFilterConditions = 1;
    t.filterCondition = c;
    return t;
}

/* A subscription whose enumTemplate asks for one remote port (section 11.5). */
static DWORD subscribe_port(HANDLE h, UINT16 port, struct seen *seen, HANDLE *sub) {
    FWPM_FILTER_CONDITION0 c;
    FWPM_NET_EVENT_ENUM_TEMPLATE0 t = port_template(port, &c);
    FWPM_NET_EVENT_SUBSCRIPTION0 subscription = {0};
    subscription.enumTemplate = &t;
    return FwpmNetEventSubscribe0(h, &subscription, on_event, seen, sub);
}

static void wait_for_event(HANDLE h, UINT64 filter_id) {
    static struct seen seen;
    static struct seen other;
    HANDLE sub = NULL;
    HANDLE other_sub = NULL;
    /* Our filter blocks port 23: a template for 23 sees its drop, one for 80 sees nothing. */
    OK(subscribe_port(h, 23, &seen, &sub));
    OK(subscribe_port(h, 80, &other, &other_sub));
    /* A condition the library does not carry is refused. */
    FWPM_FILTER_CONDITION0 app;
    memset(&app, 0, sizeof app);
    app.fieldKey = FWPM_CONDITION_ALE_APP_ID;
    app.matchType = FWP_MATCH_EQUAL;
    app.conditionValue.type = FWP_UINT16;
    FWPM_NET_EVENT_ENUM_TEMPLATE0 t;
    memset(&t, 0, sizeof t);
    t.numFilterConditions = 1;
    t.filterCondition = &app;
    FWPM_NET_EVENT_SUBSCRIPTION0 bad = {0};
    bad.enumTemplate = &t;
    HANDLE none = NULL;
    DWORD r = FwpmNetEventSubscribe0(h, &bad, on_event, &other, &none);
    CHECK(r == 0x80004001, "ALE_APP_ID template = 0x%08x", (unsigned)r);
    printf("SUBSCRIBED\n");
    fflush(stdout);
    for (int i = 0; i < 1000 && atomic_load(&seen.count) == 0; i++) usleep(10 * 1000);
    OK(FwpmNetEventUnsubscribe0(h, sub));
    OK(FwpmNetEventUnsubscribe0(h, other_sub));
    CHECK(atomic_load(&seen.count) > 0, "no net event arrived");
    CHECK(atomic_load(&other.count) == 0, "the port-80 subscription got %d events",
          atomic_load(&other.count));
    CHECK(seen.type == FWPM_NET_EVENT_TYPE_CLASSIFY_DROP, "event type %u", seen.type);
    CHECK(seen.filter_id == filter_id, "event filter %llu", (unsigned long long)seen.filter_id);
    printf("EVENT type=%u filter=%llu layer=%u\n", seen.type, (unsigned long long)seen.filter_id, seen.layer_id);
    int after = atomic_load(&seen.count);
    usleep(50 * 1000);
    CHECK(atomic_load(&seen.count) == after, "a callback ran after FwpmNetEventUnsubscribe0");
}

/* Enumerates the stored net events `t` accepts, `page` at a time; counts the CLASSIFY_DROPs of
 * `filter_id` (port 23 remote) in *ours and returns how many events there were. */
static UINT32 enum_events(HANDLE h, const FWPM_NET_EVENT_ENUM_TEMPLATE0 *t, UINT32 page, UINT64 filter_id,
                          UINT32 *ours) {
    HANDLE e = NULL;
    UINT32 total = 0;
    *ours = 0;
    OK(FwpmNetEventCreateEnumHandle0(h, t, &e));
    for (int round = 0; round < 10000; round++) {
        FWPM_NET_EVENT0 **events = NULL;
        UINT32 n = 0;
        OK(FwpmNetEventEnum0(h, e, page, &events, &n));
        CHECK(n <= page, "%u events for a page of %u", n, page);
        for (UINT32 i = 0; i < n; i++) {
            const FWPM_NET_EVENT0 *ev = events[i];
            *ours += ev->type == FWPM_NET_EVENT_TYPE_CLASSIFY_DROP && ev->classifyDrop &&
                     ev->classifyDrop->filterId == filter_id && ev->header.remotePort == 23 &&
                     ev->header.ipProtocol == 6 && ev->header.remoteAddrV4 == 0x0A000001;
        }
        FwpmFreeMemory0((void **)&events);
        CHECK(events == NULL, "FwpmFreeMemory0 did not clear the pointer");
        total += n;
        if (n == 0) break;
    }
    OK(FwpmNetEventDestroyEnumHandle0(h, e));
    return total;
}

/* After the drop: enumeration finds it with a matching template, page by page, and not with a
 * template for another port; a closed enumeration handle is refused. */
static void check_event_enum(HANDLE h, UINT64 filter_id) {
    FWPM_FILTER_CONDITION0 c;
    FWPM_NET_EVENT_ENUM_TEMPLATE0 t = port_template(23, &c);
    UINT32 ours = 0;
    UINT32 total = enum_events(h, &t, 1, filter_id, &ours);
    CHECK(ours >= 1 && total == ours, "port 23: %u of ours in %u events", ours, total);
    UINT32 all = enum_events(h, NULL, 100, filter_id, &ours);
    CHECK(ours >= 1 && all >= total, "no template: %u of ours in %u events", ours, all);
    t = port_template(80, &c);
    total = enum_events(h, &t, 100, filter_id, &ours);
    CHECK(total == 0, "port 80: %u events", total);
    FWPM_NET_EVENT_ENUM_TEMPLATE0 future;
    memset(&future, 0, sizeof future);
    future.startTime.dwHighDateTime = 0x7FFFFFFF; /* far in the future: nothing in the window */
    total = enum_events(h, &future, 100, filter_id, &ours);
    CHECK(total == 0, "future window: %u events", total);
    HANDLE e = NULL;
    OK(FwpmNetEventCreateEnumHandle0(h, NULL, &e));
    OK(FwpmNetEventDestroyEnumHandle0(h, e));
    /* Not inside a transaction (as on Windows). */
    OK(FwpmTransactionBegin0(h, FWPM_TXN_READ_ONLY));
    DWORD r = FwpmNetEventCreateEnumHandle0(h, NULL, &e);
    CHECK(r == FWP_E_TXN_IN_PROGRESS, "enum in a transaction = 0x%08x", (unsigned)r);
    OK(FwpmTransactionAbort0(h));
    CHECK(FwpmNetEventCreateEnumHandle0(NULL, NULL, &e) == ERROR_INVALID_HANDLE, "NULL engine");
    CHECK(FwpmNetEventCreateEnumHandle0(h, NULL, NULL) == FWP_E_NULL_POINTER, "NULL out");
    printf("ENUMERATED %u\n", all);
}

int main(void) {
    HANDLE h = NULL;
    FWPM_SESSION0 session = {0};
    session.displayData.name = L"fwpmu C client";
    session.txnWaitTimeoutInMSec = 2000;
    OK(FwpmEngineOpen0(NULL, RPC_C_AUTHN_DEFAULT, NULL, &session, &h));
    CHECK(FwpmFilterAdd0(NULL, NULL, NULL, NULL) == ERROR_INVALID_HANDLE, "NULL handle");
    CHECK(FwpmFilterAdd0(h, NULL, NULL, NULL) == FWP_E_NULL_POINTER, "NULL filter");

    UINT64 filter_id = 0;
    UINT32 callout_id = 0;
    add_objects(h, &filter_id, &callout_id);
    printf("FILTER %llu\n", (unsigned long long)filter_id);
    fflush(stdout);
    CHECK(count_our_filters(h, filter_id) == 1, "our filter is not enumerated once");
    check_templates(h);
    check_other_listings(h, callout_id);
    wait_for_event(h, filter_id);
    check_event_enum(h, filter_id);

    OK(FwpmFilterDeleteById0(h, filter_id));
    DWORD gone = FwpmFilterDeleteByKey0(h, &FILTER);
    CHECK(gone == FWP_E_FILTER_NOT_FOUND, "second delete = 0x%08x", (unsigned)gone);
    OK(FwpmCalloutDeleteById0(h, callout_id));
    OK(FwpmSubLayerDeleteByKey0(h, &SUBLAYER));
    OK(FwpmProviderDeleteByKey0(h, &PROVIDER));
    CHECK(count_our_filters(h, filter_id) == 0, "filter still enumerated after delete");
    OK(FwpmEngineClose0(h));
    printf("OK\n");
    return 0;
}
