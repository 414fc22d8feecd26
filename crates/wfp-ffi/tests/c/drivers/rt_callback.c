/* rt_callback test driver (ours): callback objects as WFPSampler's Framework_PowerStates.cpp uses
 * them (\Callback\PowerState opened with Create FALSE, a registration, ObDereferenceObject), and
 * a callback object of the driver's own notified with ExNotifyCallback. Prints "ok NAME" /
 * "FAIL NAME". With -DRT_CALLBACK_LEAVE it keeps its power-state registration and reference. */
#include <ntddk.h>

#define CHECK(name, cond) \
    do { if (cond) DbgPrint("ok %s\n", name); else DbgPrint("FAIL %s (line %d)\n", name, __LINE__); } while (0)

DRIVER_INITIALIZE DriverEntry;
DRIVER_UNLOAD RtCallbackUnload;
CALLBACK_FUNCTION RtPowerState;
CALLBACK_FUNCTION RtOwn;

static PCALLBACK_OBJECT gPower;
static PVOID gPowerRegistration;
static LONG gPowerCalls;
static LONG gOwnCalls;
static PVOID gOwnArgs[2];

void RtPowerState(PVOID context, PVOID event, PVOID specifics)
{
   UNREFERENCED_PARAMETER(event);
   UNREFERENCED_PARAMETER(specifics);
   InterlockedIncrement((LONG*)context);
}

void RtOwn(PVOID context, PVOID argument1, PVOID argument2)
{
   InterlockedIncrement((LONG*)context);
   gOwnArgs[0] = argument1;
   gOwnArgs[1] = argument2;
}

static NTSTATUS OpenCallback(PCWSTR name, BOOLEAN create, BOOLEAN multiple, PCALLBACK_OBJECT* object)
{
   OBJECT_ATTRIBUTES attributes;
   UNICODE_STRING text;
   RtlInitUnicodeString(&text, name);
   InitializeObjectAttributes(&attributes, &text, OBJ_CASE_INSENSITIVE, NULL, NULL);
   return ExCreateCallback(object, &attributes, create, multiple);
}

static void OwnObjectChecks(void)
{
   PCALLBACK_OBJECT own = NULL;
   PVOID first;
   CHECK("ExCreateCallback creates a named object",
         OpenCallback(L"\\Callback\\RtCallbackTest", TRUE, FALSE, &own) == STATUS_SUCCESS && own != NULL);
   first = ExRegisterCallback(own, RtOwn, &gOwnCalls);
   CHECK("ExRegisterCallback", first != NULL);
   CHECK("no second registration without AllowMultipleCallbacks", ExRegisterCallback(own, RtOwn, &gOwnCalls) == NULL);
   ExNotifyCallback(own, (PVOID)1, (PVOID)2);
   CHECK("ExNotifyCallback calls the registered function with its arguments",
         gOwnCalls == 1 && gOwnArgs[0] == (PVOID)1 && gOwnArgs[1] == (PVOID)2);
   ExUnregisterCallback(first);
   ExNotifyCallback(own, (PVOID)3, (PVOID)4);
   CHECK("no call after ExUnregisterCallback", gOwnCalls == 1);
   ObDereferenceObject(own);
}

void RtCallbackUnload(PDRIVER_OBJECT DriverObject)
{
   UNREFERENCED_PARAMETER(DriverObject);
   CHECK("the host never notified the power state", gPowerCalls == 0);
#ifndef RT_CALLBACK_LEAVE
   ExUnregisterCallback(gPowerRegistration);
   ObDereferenceObject(gPower);
#endif
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
   PCALLBACK_OBJECT missing = NULL;
   UNREFERENCED_PARAMETER(RegistryPath);
   DriverObject->DriverUnload = RtCallbackUnload;
   CHECK("\\Callback\\PowerState exists (Create FALSE)",
         OpenCallback(L"\\Callback\\PowerState", FALSE, TRUE, &gPower) == STATUS_SUCCESS && gPower != NULL);
   CHECK("an unknown name with Create FALSE",
         OpenCallback(L"\\Callback\\NoSuchObject", FALSE, TRUE, &missing) == (NTSTATUS)0xC0000034L);
   gPowerRegistration = ExRegisterCallback(gPower, RtPowerState, &gPowerCalls);
   CHECK("a registration on \\Callback\\PowerState", gPowerRegistration != NULL);
   OwnObjectChecks();
   DbgPrint("done\n");
   return STATUS_SUCCESS;
}
