/* wfp-ddk: SAL and driver annotations as no-ops (wdk-runtime.md §10). Function-like names are
 * variadic so any argument list is accepted. */
#ifndef WFP_DDK_SAL_H
#define WFP_DDK_SAL_H
#define _In_
#define _In_opt_
#define _In_z_
#define _In_opt_z_
#define _In_reads_(...)
#define _In_reads_opt_(...)
#define _In_reads_bytes_(...)
#define _In_reads_bytes_opt_(...)
#define _In_range_(...)
#define _Out_
#define _Out_opt_
#define _Out_writes_(...)
#define _Out_writes_opt_(...)
#define _Out_writes_bytes_(...)
#define _Out_writes_bytes_opt_(...)
#define _Out_writes_bytes_to_(...)
#define _Out_writes_bytes_all_(...)
#define _Out_writes_to_(...)
#define _Out_writes_z_(...)
#define _Outptr_
#define _Outptr_opt_
#define _Outptr_result_maybenull_
#define _Outptr_result_buffer_(...)
#define _Outptr_result_bytebuffer_(...)
#define _Inout_
#define _Inout_opt_
#define _Inout_z_
#define _Inout_updates_(...)
#define _Inout_updates_bytes_(...)
#define _Inout_updates_bytes_to_(...)
#define _Deref_out_range_(...)
#define _When_(...)
#define _At_(...)
#define _Always_(...)
#define _Post_z_
#define _Post_satisfies_(...)
#define _Pre_satisfies_(...)
#define _Pre_notnull_
#define _Post_writable_byte_size_(...)
#define _Success_(...)
#define _Must_inspect_result_
#define _Check_return_
#define _Ret_maybenull_
#define _Ret_range_(...)
#define _Use_decl_annotations_
#define _Function_class_(...)
#define _Dispatch_type_(...)
#define _Printf_format_string_
#define _Reserved_
#define _Null_terminated_
#define _Field_size_(...)
#define _Field_size_opt_(...)
#define _Field_size_bytes_(...)
#define _Field_size_bytes_opt_(...)
#define _Field_size_bytes_part_opt_(...)
#define _Field_range_(...)
#define _Struct_size_bytes_(...)
#define _Enum_is_bitflag_
#define _Return_type_success_(...)
#define _Strict_type_match_
#define _Literal_
#define _Notliteral_
#define _Maybenull_
#define _Analysis_assume_(...)
#define _Interlocked_operand_
#define _Acquires_lock_(...)
#define _Releases_lock_(...)
#define _Requires_lock_held_(...)
#define _Requires_lock_not_held_(...)
#define _Post_same_lock_(...)
#define _Acquires_exclusive_lock_(...)
#define _Releases_exclusive_lock_(...)
#define _IRQL_requires_(...)
#define _IRQL_requires_max_(...)
#define _IRQL_requires_min_(...)
#define _IRQL_raises_(...)
#define _IRQL_saves_
#define _IRQL_restores_
#define _IRQL_requires_same_
#define _IRQL_saves_global_(...)
#define _IRQL_restores_global_(...)
#define _IRQL_always_function_min_(...)
#define _IRQL_always_function_max_(...)
#define _Kernel_float_saved_
#define _Kernel_float_restored_
#define _Kernel_requires_resource_held_(...)
#define _Kernel_requires_resource_not_held_(...)
#define _Kernel_clear_do_init_(...)
#define _Frees_ptr_
#define _Frees_ptr_opt_
#define _Post_invalid_
#define _Post_ptr_invalid_
#define _Pre_valid_
#define _Valid_
#define _Points_to_data_
#define _Writable_bytes_(...)
#define _Readable_bytes_(...)
#define __drv_allocatesMem(...)
#define __drv_freesMem(...)
#define __drv_aliasesMem
#define __drv_strictTypeMatch(...)
#define __drv_strictType(...)
#define __drv_dispatchType(...)
#define __drv_reportError(...)
#define __drv_maxIRQL(...)
#define __drv_minIRQL(...)
#define __drv_setsIRQL(...)
#define __drv_savesIRQL
#define __drv_restoresIRQL
#define __drv_requiresIRQL(...)
#define __drv_when(...)
#define __drv_functionClass(...)
#define __drv_sameIRQL
#define __drv_useCancelIRQL
#define __drv_acquiresResource(...)
#define __drv_releasesResource(...)
#define __drv_mustHold(...)
#define __drv_neverHold(...)
#define __drv_inTry
#define __drv_preferredFunction(...)
#define __in
#define __out
#define __inout
#define __in_opt
#define __out_opt
#define __inout_opt
#define __in_bcount(...)
#define __out_bcount(...)
#define __in_ecount(...)
#define __out_ecount(...)
#define __deref_out
#define __checkReturn
#define __success(...)
#ifndef IN
#define IN
#endif
#ifndef OUT
#define OUT
#endif
#ifndef OPTIONAL
#define OPTIONAL
#endif

/* More SAL / driver annotations (concurrency SAL, SAL 1 spellings, analysis helpers). */
#define _Analysis_noreturn_
#define _Benign_race_begin_
#define _Benign_race_end_
#define _No_competing_thread_begin_
#define _No_competing_thread_end_
#define _Kernel_float_used_
#define _Outptr_result_nullonfailure_
#define _Outptr_opt_result_maybenull_
#define _Ret_notnull_
#define _Ret_z_
#define _Result_nullonfailure_
#define _Result_zeroonfailure_
#define _Post_valid_
#define _Const_
#define _Pre_defensive_
#define _Post_defensive_
#define __drv_floatUsed
#define __drv_notInTry
#define __drv_interlocked
#define __drv_isObjectPointer
#define __drv_constant
#define __drv_nonConstant
#define __drv_floatSaved
#define __drv_floatRestored
#define __drv_acquiresCancelSpinLock
#define __drv_releasesCancelSpinLock
#define __drv_mustHoldCancelSpinLock
#define __drv_neverHoldCancelSpinLock
#define __drv_acquiresCriticalRegion
#define __drv_releasesCriticalRegion
#define __drv_mustHoldCriticalRegion
#define _IRQL_is_cancel_
#define _IRQL_uses_cancel_
#define _Post_notnull_
#define _Post_null_
#define _Post_maybenull_
#define _Pre_maybenull_
#define _Pre_null_
#define _Pre_z_
#define _Pre_opt_valid_
#define _Ret_maybenull_z_
#define _Ret_opt_
#define _Ret_null_
#define _Prepost_z_
#define _Outptr_result_z_
#define _Outptr_opt_result_z_
#define _Outref_
#define _Outref_result_maybenull_
#define _Notref_
#define _Translates_Win32_to_HRESULT_
#define _Translates_NTSTATUS_to_HRESULT_
#define _Translates_last_error_to_HRESULT_
#define _Ret_valid_
#define _Deref_out_z_
#define _Raises_SEH_exception_
#define _Maybe_raises_SEH_exception_
#define _Kernel_entry_
#define __format_string
#define __reserved
#define __callback
#define __in_z
#define __out_z
#define __nullterminated
#define __deref_out_opt
#define _Lock_kind_mutex_
#define _Lock_kind_event_
#define _Lock_kind_semaphore_
#define _Lock_kind_spin_lock_
#define _Lock_kind_critical_section_
#define _Global_cancel_spin_lock_
#define _Global_critical_region_
#define _Global_interlock_
#define _Global_priority_region_
#define _Scanf_format_string_
#define _Scanf_s_format_string_
#define _Pre_
#define _Post_
#define _Field_z_
#define _Must_inspect_impl_
#define _Deref_out_
#define _Kernel_IoGetDmaAdapter_
#define _Unreferenced_parameter_
#define __drv_dispatchType_other
#define _Deref_pre_z_
#define _Deref_post_z_
#define _Deref_out_opt_
#define _Deref_opt_out_
#define _Pre_invalid_
#define _Inout_opt_z_
#define _NullNull_terminated_
#define _Notnull_
#define _Null_
#define _Notvalid_
#define _Maybevalid_
#define _Out_z_
#define _Outptr_result_maybenull_z_
#define _Success_impl_
#define _Analysis_mode_(...)
#define __drv_Mode_impl(...)
#define _Analysis_assume_lock_not_held_(...)
#define _Analysis_assume_lock_held_(...)
#define _Analysis_assume_lock_acquired_(...)
#define _Analysis_assume_lock_released_(...)
#define _Analysis_assume_same_lock_(...)
#define _Guarded_by_(...)
#define _Write_guarded_by_(...)
#define _Has_lock_kind_(...)
#define _Has_lock_level_(...)
#define _Requires_exclusive_lock_held_(...)
#define _Requires_shared_lock_held_(...)
#define _Acquires_shared_lock_(...)
#define _Releases_shared_lock_(...)
#define _Kernel_acquires_resource_(...)
#define _Kernel_releases_resource_(...)
#define _Out_range_(...)
#define _Ret_writes_(...)
#define _Ret_writes_z_(...)
#define _Ret_writes_bytes_(...)
#define _Ret_writes_maybenull_(...)
#define _Ret_writes_bytes_maybenull_(...)
#define _Ret_writes_to_(...)
#define _Ret_writes_bytes_to_(...)
#define _In_reads_z_(...)
#define _In_reads_or_z_(...)
#define _In_reads_or_z_opt_(...)
#define _Out_writes_to_opt_(...)
#define _Out_writes_bytes_to_opt_(...)
#define _Inout_updates_opt_(...)
#define _Inout_updates_z_(...)
#define _Inout_updates_bytes_opt_(...)
#define _Pre_readable_size_(...)
#define _Pre_writable_size_(...)
#define _Pre_readable_byte_size_(...)
#define _Pre_writable_byte_size_(...)
#define _Post_readable_size_(...)
#define _Post_readable_byte_size_(...)
#define _Post_writable_size_(...)
#define _Field_size_part_(...)
#define _Field_size_part_opt_(...)
#define _Field_size_full_(...)
#define _Field_size_bytes_full_(...)
#define _Unchanged_(...)
#define _Readable_elements_(...)
#define _Writable_elements_(...)
#define _In_defensive_(...)
#define _Out_defensive_(...)
#define _Inout_defensive_(...)
#define __drv_raisesIRQL(...)
#define __drv_savesIRQLGlobal(...)
#define __drv_restoresIRQLGlobal(...)
#define __drv_at(...)
#define __drv_in(...)
#define __drv_out(...)
#define __drv_innerMustHold(...)
#define __drv_innerNeverHold(...)
#define __drv_valueIs(...)
#define __drv_deref(...)
#define __drv_arg(...)
#define __drv_fun(...)
#define __drv_ret(...)
#define __drv_unit(...)
#define __drv_declspec(...)
#define __drv_completionType(...)
#define __drv_callbackType(...)
#define __drv_typeConst(...)
#define __drv_typeCond(...)
#define __drv_typeBitset(...)
#define __drv_typeExpr(...)
#define __drv_defined(...)
#define __drv_formatString(...)
#define __drv_clearDoInit(...)
#define __drv_acquiresExclusiveResource(...)
#define __drv_releasesExclusiveResource(...)
#define __drv_maxFunctionIRQL(...)
#define __drv_minFunctionIRQL(...)
#define _Out_z_cap_(...)
#define __bcount(...)
#define __ecount(...)
#define __inout_bcount(...)
#define __inout_ecount(...)
#define __in_bcount_opt(...)
#define __out_bcount_opt(...)
#define __out_ecount_opt(...)
#define __in_ecount_opt(...)
#define __out_bcount_part(...)
#define __out_ecount_part(...)
#define _Inexpressible_(...)
#define _In_count_(...)
#define _Out_cap_(...)
#define _Always_impl_(...)
#define _Out_writes_all_(...)
#define _Out_writes_all_opt_(...)
#define _Out_writes_bytes_all_opt_(...)
#define _Post_equal_to_(...)
#define _Pre_equal_to_(...)
#define _On_failure_(...)
#define _Deref_in_range_(...)
#define _Releases_nonreentrant_lock_(...)
#define _Acquires_nonreentrant_lock_(...)
#define _Lock_level_order_(...)
#define _Create_lock_level_(...)
#define _Internal_lock_level_order_(...)
#define _Outptr_opt_result_buffer_(...)
#define _Outptr_result_buffer_maybenull_(...)
#define _Outptr_opt_result_bytebuffer_(...)
#define _Outptr_result_bytebuffer_maybenull_(...)
#define _Outptr_result_buffer_to_(...)
#define _Outptr_result_bytebuffer_to_(...)
#define _Inout_updates_all_(...)
#define _Inout_updates_bytes_all_(...)
#define _Inout_updates_to_(...)
#define _Inout_cap_(...)
#define _In_bytecount_(...)
#define _Out_bytecap_(...)
#define _Inout_updates_all_opt_(...)
#define _In_reads_to_ptr_(...)
#define _Out_writes_to_ptr_(...)
#define _IRQL_limited_to_(...)
#define _In_NLS_string_(...)
#define _Printf_format_string_params_(...)
#define _At_buffer_(...)
#define _Satisfies_(...)
#define _Field_size_bytes_part_(...)
#define _Kernel_float_(...)
#define _Ret_notnull_impl_(...)
/* The rest of the SAL 2 annotation set (sal.h / driverspecs.h names not defined above), each a
 * no-op; guarded, so a header that defines one first wins. The SAL 1 double-underscore names
 * (__in, __out_ecount, ...) are left out: glibc and libstdc++ use such reserved names as
 * identifiers. */
#ifndef _Analysis_assume_nullterminated_
#define _Analysis_assume_nullterminated_(...)
#endif
#ifndef _COM_Outptr_
#define _COM_Outptr_
#endif
#ifndef _COM_Outptr_opt_
#define _COM_Outptr_opt_
#endif
#ifndef _COM_Outptr_opt_result_maybenull_
#define _COM_Outptr_opt_result_maybenull_
#endif
#ifndef _COM_Outptr_result_maybenull_
#define _COM_Outptr_result_maybenull_
#endif
#ifndef _Called_from_function_class_
#define _Called_from_function_class_(...)
#endif
#ifndef _Deref_inout_range_
#define _Deref_inout_range_(...)
#endif
#ifndef _Deref_opt_out_opt_
#define _Deref_opt_out_opt_
#endif
#ifndef _Deref_ret_range_
#define _Deref_ret_range_(...)
#endif
#ifndef _Field_size_bytes_full_opt_
#define _Field_size_bytes_full_opt_(...)
#endif
#ifndef _Field_size_full_opt_
#define _Field_size_full_opt_(...)
#endif
#ifndef _Group_
#define _Group_(...)
#endif
#ifndef _In_bytecount_c_
#define _In_bytecount_c_(...)
#endif
#ifndef _In_bytecount_x_
#define _In_bytecount_x_(...)
#endif
#ifndef _In_count_c_
#define _In_count_c_(...)
#endif
#ifndef _In_count_x_
#define _In_count_x_(...)
#endif
#ifndef _In_opt_bytecount_
#define _In_opt_bytecount_(...)
#endif
#ifndef _In_opt_bytecount_c_
#define _In_opt_bytecount_c_(...)
#endif
#ifndef _In_opt_bytecount_x_
#define _In_opt_bytecount_x_(...)
#endif
#ifndef _In_opt_count_
#define _In_opt_count_(...)
#endif
#ifndef _In_opt_count_c_
#define _In_opt_count_c_(...)
#endif
#ifndef _In_opt_count_x_
#define _In_opt_count_x_(...)
#endif
#ifndef _In_opt_ptrdiff_count_
#define _In_opt_ptrdiff_count_(...)
#endif
#ifndef _In_opt_z_bytecount_
#define _In_opt_z_bytecount_(...)
#endif
#ifndef _In_opt_z_bytecount_c_
#define _In_opt_z_bytecount_c_(...)
#endif
#ifndef _In_opt_z_count_
#define _In_opt_z_count_(...)
#endif
#ifndef _In_opt_z_count_c_
#define _In_opt_z_count_c_(...)
#endif
#ifndef _In_ptrdiff_count_
#define _In_ptrdiff_count_(...)
#endif
#ifndef _In_reads_opt_z_
#define _In_reads_opt_z_(...)
#endif
#ifndef _In_reads_to_ptr_opt_
#define _In_reads_to_ptr_opt_(...)
#endif
#ifndef _In_reads_to_ptr_opt_z_
#define _In_reads_to_ptr_opt_z_(...)
#endif
#ifndef _In_reads_to_ptr_z_
#define _In_reads_to_ptr_z_(...)
#endif
#ifndef _In_z_bytecount_
#define _In_z_bytecount_(...)
#endif
#ifndef _In_z_bytecount_c_
#define _In_z_bytecount_c_(...)
#endif
#ifndef _In_z_count_
#define _In_z_count_(...)
#endif
#ifndef _In_z_count_c_
#define _In_z_count_c_(...)
#endif
#ifndef _Inout_bytecap_
#define _Inout_bytecap_(...)
#endif
#ifndef _Inout_bytecap_c_
#define _Inout_bytecap_c_(...)
#endif
#ifndef _Inout_bytecap_x_
#define _Inout_bytecap_x_(...)
#endif
#ifndef _Inout_bytecount_
#define _Inout_bytecount_(...)
#endif
#ifndef _Inout_bytecount_c_
#define _Inout_bytecount_c_(...)
#endif
#ifndef _Inout_bytecount_x_
#define _Inout_bytecount_x_(...)
#endif
#ifndef _Inout_cap_c_
#define _Inout_cap_c_(...)
#endif
#ifndef _Inout_cap_x_
#define _Inout_cap_x_(...)
#endif
#ifndef _Inout_count_
#define _Inout_count_(...)
#endif
#ifndef _Inout_count_c_
#define _Inout_count_c_(...)
#endif
#ifndef _Inout_count_x_
#define _Inout_count_x_(...)
#endif
#ifndef _Inout_opt_bytecap_
#define _Inout_opt_bytecap_(...)
#endif
#ifndef _Inout_opt_bytecap_c_
#define _Inout_opt_bytecap_c_(...)
#endif
#ifndef _Inout_opt_bytecap_x_
#define _Inout_opt_bytecap_x_(...)
#endif
#ifndef _Inout_opt_bytecount_
#define _Inout_opt_bytecount_(...)
#endif
#ifndef _Inout_opt_bytecount_c_
#define _Inout_opt_bytecount_c_(...)
#endif
#ifndef _Inout_opt_bytecount_x_
#define _Inout_opt_bytecount_x_(...)
#endif
#ifndef _Inout_opt_cap_
#define _Inout_opt_cap_(...)
#endif
#ifndef _Inout_opt_cap_c_
#define _Inout_opt_cap_c_(...)
#endif
#ifndef _Inout_opt_cap_x_
#define _Inout_opt_cap_x_(...)
#endif
#ifndef _Inout_opt_count_
#define _Inout_opt_count_(...)
#endif
#ifndef _Inout_opt_count_c_
#define _Inout_opt_count_c_(...)
#endif
#ifndef _Inout_opt_count_x_
#define _Inout_opt_count_x_(...)
#endif
#ifndef _Inout_opt_ptrdiff_count_
#define _Inout_opt_ptrdiff_count_(...)
#endif
#ifndef _Inout_opt_z_bytecap_
#define _Inout_opt_z_bytecap_(...)
#endif
#ifndef _Inout_opt_z_bytecap_c_
#define _Inout_opt_z_bytecap_c_(...)
#endif
#ifndef _Inout_opt_z_bytecap_x_
#define _Inout_opt_z_bytecap_x_(...)
#endif
#ifndef _Inout_opt_z_bytecount_
#define _Inout_opt_z_bytecount_(...)
#endif
#ifndef _Inout_opt_z_bytecount_c_
#define _Inout_opt_z_bytecount_c_(...)
#endif
#ifndef _Inout_opt_z_cap_
#define _Inout_opt_z_cap_(...)
#endif
#ifndef _Inout_opt_z_cap_c_
#define _Inout_opt_z_cap_c_(...)
#endif
#ifndef _Inout_opt_z_cap_x_
#define _Inout_opt_z_cap_x_(...)
#endif
#ifndef _Inout_opt_z_count_
#define _Inout_opt_z_count_(...)
#endif
#ifndef _Inout_opt_z_count_c_
#define _Inout_opt_z_count_c_(...)
#endif
#ifndef _Inout_ptrdiff_count_
#define _Inout_ptrdiff_count_(...)
#endif
#ifndef _Inout_updates_bytes_all_opt_
#define _Inout_updates_bytes_all_opt_(...)
#endif
#ifndef _Inout_updates_bytes_to_opt_
#define _Inout_updates_bytes_to_opt_(...)
#endif
#ifndef _Inout_updates_opt_z_
#define _Inout_updates_opt_z_(...)
#endif
#ifndef _Inout_updates_to_opt_
#define _Inout_updates_to_opt_(...)
#endif
#ifndef _Inout_z_bytecap_
#define _Inout_z_bytecap_(...)
#endif
#ifndef _Inout_z_bytecap_c_
#define _Inout_z_bytecap_c_(...)
#endif
#ifndef _Inout_z_bytecap_x_
#define _Inout_z_bytecap_x_(...)
#endif
#ifndef _Inout_z_bytecount_
#define _Inout_z_bytecount_(...)
#endif
#ifndef _Inout_z_bytecount_c_
#define _Inout_z_bytecount_c_(...)
#endif
#ifndef _Inout_z_cap_
#define _Inout_z_cap_(...)
#endif
#ifndef _Inout_z_cap_c_
#define _Inout_z_cap_c_(...)
#endif
#ifndef _Inout_z_cap_x_
#define _Inout_z_cap_x_(...)
#endif
#ifndef _Inout_z_count_
#define _Inout_z_count_(...)
#endif
#ifndef _Inout_z_count_c_
#define _Inout_z_count_c_(...)
#endif
#ifndef _Out_bytecap_c_
#define _Out_bytecap_c_(...)
#endif
#ifndef _Out_bytecap_post_bytecount_
#define _Out_bytecap_post_bytecount_(...)
#endif
#ifndef _Out_bytecap_x_
#define _Out_bytecap_x_(...)
#endif
#ifndef _Out_bytecapcount_
#define _Out_bytecapcount_(...)
#endif
#ifndef _Out_bytecapcount_x_
#define _Out_bytecapcount_x_(...)
#endif
#ifndef _Out_cap_c_
#define _Out_cap_c_(...)
#endif
#ifndef _Out_cap_m_
#define _Out_cap_m_(...)
#endif
#ifndef _Out_cap_post_count_
#define _Out_cap_post_count_(...)
#endif
#ifndef _Out_cap_x_
#define _Out_cap_x_(...)
#endif
#ifndef _Out_capcount_
#define _Out_capcount_(...)
#endif
#ifndef _Out_capcount_x_
#define _Out_capcount_x_(...)
#endif
#ifndef _Out_opt_bytecap_
#define _Out_opt_bytecap_(...)
#endif
#ifndef _Out_opt_bytecap_c_
#define _Out_opt_bytecap_c_(...)
#endif
#ifndef _Out_opt_bytecap_post_bytecount_
#define _Out_opt_bytecap_post_bytecount_(...)
#endif
#ifndef _Out_opt_bytecap_x_
#define _Out_opt_bytecap_x_(...)
#endif
#ifndef _Out_opt_bytecapcount_
#define _Out_opt_bytecapcount_(...)
#endif
#ifndef _Out_opt_bytecapcount_x_
#define _Out_opt_bytecapcount_x_(...)
#endif
#ifndef _Out_opt_cap_
#define _Out_opt_cap_(...)
#endif
#ifndef _Out_opt_cap_c_
#define _Out_opt_cap_c_(...)
#endif
#ifndef _Out_opt_cap_m_
#define _Out_opt_cap_m_(...)
#endif
#ifndef _Out_opt_cap_post_count_
#define _Out_opt_cap_post_count_(...)
#endif
#ifndef _Out_opt_cap_x_
#define _Out_opt_cap_x_(...)
#endif
#ifndef _Out_opt_capcount_
#define _Out_opt_capcount_(...)
#endif
#ifndef _Out_opt_capcount_x_
#define _Out_opt_capcount_x_(...)
#endif
#ifndef _Out_opt_ptrdiff_cap_
#define _Out_opt_ptrdiff_cap_(...)
#endif
#ifndef _Out_opt_z_bytecap_
#define _Out_opt_z_bytecap_(...)
#endif
#ifndef _Out_opt_z_bytecap_c_
#define _Out_opt_z_bytecap_c_(...)
#endif
#ifndef _Out_opt_z_bytecap_post_bytecount_
#define _Out_opt_z_bytecap_post_bytecount_(...)
#endif
#ifndef _Out_opt_z_bytecap_x_
#define _Out_opt_z_bytecap_x_(...)
#endif
#ifndef _Out_opt_z_bytecapcount_
#define _Out_opt_z_bytecapcount_(...)
#endif
#ifndef _Out_opt_z_cap_
#define _Out_opt_z_cap_(...)
#endif
#ifndef _Out_opt_z_cap_c_
#define _Out_opt_z_cap_c_(...)
#endif
#ifndef _Out_opt_z_cap_m_
#define _Out_opt_z_cap_m_(...)
#endif
#ifndef _Out_opt_z_cap_post_count_
#define _Out_opt_z_cap_post_count_(...)
#endif
#ifndef _Out_opt_z_cap_x_
#define _Out_opt_z_cap_x_(...)
#endif
#ifndef _Out_opt_z_capcount_
#define _Out_opt_z_capcount_(...)
#endif
#ifndef _Out_ptrdiff_cap_
#define _Out_ptrdiff_cap_(...)
#endif
#ifndef _Out_writes_opt_z_
#define _Out_writes_opt_z_(...)
#endif
#ifndef _Out_writes_to_ptr_opt_
#define _Out_writes_to_ptr_opt_(...)
#endif
#ifndef _Out_writes_to_ptr_opt_z_
#define _Out_writes_to_ptr_opt_z_(...)
#endif
#ifndef _Out_writes_to_ptr_z_
#define _Out_writes_to_ptr_z_(...)
#endif
#ifndef _Out_z_bytecap_
#define _Out_z_bytecap_(...)
#endif
#ifndef _Out_z_bytecap_c_
#define _Out_z_bytecap_c_(...)
#endif
#ifndef _Out_z_bytecap_post_bytecount_
#define _Out_z_bytecap_post_bytecount_(...)
#endif
#ifndef _Out_z_bytecap_x_
#define _Out_z_bytecap_x_(...)
#endif
#ifndef _Out_z_bytecapcount_
#define _Out_z_bytecapcount_(...)
#endif
#ifndef _Out_z_cap_c_
#define _Out_z_cap_c_(...)
#endif
#ifndef _Out_z_cap_m_
#define _Out_z_cap_m_(...)
#endif
#ifndef _Out_z_cap_post_count_
#define _Out_z_cap_post_count_(...)
#endif
#ifndef _Out_z_cap_x_
#define _Out_z_cap_x_(...)
#endif
#ifndef _Out_z_capcount_
#define _Out_z_capcount_(...)
#endif
#ifndef _Outptr_opt_result_buffer_all_
#define _Outptr_opt_result_buffer_all_(...)
#endif
#ifndef _Outptr_opt_result_buffer_all_maybenull_
#define _Outptr_opt_result_buffer_all_maybenull_(...)
#endif
#ifndef _Outptr_opt_result_buffer_maybenull_
#define _Outptr_opt_result_buffer_maybenull_(...)
#endif
#ifndef _Outptr_opt_result_buffer_to_
#define _Outptr_opt_result_buffer_to_(...)
#endif
#ifndef _Outptr_opt_result_buffer_to_maybenull_
#define _Outptr_opt_result_buffer_to_maybenull_(...)
#endif
#ifndef _Outptr_opt_result_bytebuffer_all_
#define _Outptr_opt_result_bytebuffer_all_(...)
#endif
#ifndef _Outptr_opt_result_bytebuffer_all_maybenull_
#define _Outptr_opt_result_bytebuffer_all_maybenull_(...)
#endif
#ifndef _Outptr_opt_result_bytebuffer_maybenull_
#define _Outptr_opt_result_bytebuffer_maybenull_(...)
#endif
#ifndef _Outptr_opt_result_bytebuffer_to_
#define _Outptr_opt_result_bytebuffer_to_(...)
#endif
#ifndef _Outptr_opt_result_bytebuffer_to_maybenull_
#define _Outptr_opt_result_bytebuffer_to_maybenull_(...)
#endif
#ifndef _Outptr_opt_result_maybenull_z_
#define _Outptr_opt_result_maybenull_z_
#endif
#ifndef _Outptr_opt_result_nullonfailure_
#define _Outptr_opt_result_nullonfailure_
#endif
#ifndef _Outptr_result_buffer_all_
#define _Outptr_result_buffer_all_(...)
#endif
#ifndef _Outptr_result_buffer_all_maybenull_
#define _Outptr_result_buffer_all_maybenull_(...)
#endif
#ifndef _Outptr_result_buffer_to_maybenull_
#define _Outptr_result_buffer_to_maybenull_(...)
#endif
#ifndef _Outptr_result_bytebuffer_all_
#define _Outptr_result_bytebuffer_all_(...)
#endif
#ifndef _Outptr_result_bytebuffer_all_maybenull_
#define _Outptr_result_bytebuffer_all_maybenull_(...)
#endif
#ifndef _Outptr_result_bytebuffer_to_maybenull_
#define _Outptr_result_bytebuffer_to_maybenull_(...)
#endif
#ifndef _Outref_result_buffer_
#define _Outref_result_buffer_(...)
#endif
#ifndef _Outref_result_buffer_all_
#define _Outref_result_buffer_all_(...)
#endif
#ifndef _Outref_result_buffer_all_maybenull_
#define _Outref_result_buffer_all_maybenull_(...)
#endif
#ifndef _Outref_result_buffer_maybenull_
#define _Outref_result_buffer_maybenull_(...)
#endif
#ifndef _Outref_result_buffer_to_
#define _Outref_result_buffer_to_(...)
#endif
#ifndef _Outref_result_buffer_to_maybenull_
#define _Outref_result_buffer_to_maybenull_(...)
#endif
#ifndef _Outref_result_bytebuffer_
#define _Outref_result_bytebuffer_(...)
#endif
#ifndef _Outref_result_bytebuffer_all_
#define _Outref_result_bytebuffer_all_(...)
#endif
#ifndef _Outref_result_bytebuffer_all_maybenull_
#define _Outref_result_bytebuffer_all_maybenull_(...)
#endif
#ifndef _Outref_result_bytebuffer_maybenull_
#define _Outref_result_bytebuffer_maybenull_(...)
#endif
#ifndef _Outref_result_bytebuffer_to_
#define _Outref_result_bytebuffer_to_(...)
#endif
#ifndef _Outref_result_bytebuffer_to_maybenull_
#define _Outref_result_bytebuffer_to_maybenull_(...)
#endif
#ifndef _Outref_result_nullonfailure_
#define _Outref_result_nullonfailure_
#endif
#ifndef _Ret_writes_bytes_to_maybenull_
#define _Ret_writes_bytes_to_maybenull_(...)
#endif
#ifndef _Ret_writes_maybenull_z_
#define _Ret_writes_maybenull_z_(...)
#endif
#ifndef _Ret_writes_to_maybenull_
#define _Ret_writes_to_maybenull_(...)
#endif
#ifndef _Scanf_format_string_params_
#define _Scanf_format_string_params_(...)
#endif
#ifndef _Scanf_s_format_string_params_
#define _Scanf_s_format_string_params_(...)
#endif
#endif
