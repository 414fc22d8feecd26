//! Conformance suite: the test vectors of wfp-reference §14, one module per section, one test per
//! vector (named after it). Each test cites the section it checks and asserts the specific outcome:
//! final action, hardness, deciding filter, invocation counts and the rights callouts saw.
//!
//! Vectors that need a data path (packets, fragments, the stream waterfall) drive `wfp-shim`
//! (`s14_6_data_path`, `s14_7_stream_waterfall`); the shim's own tests cover them too.

mod s10_4_packets;
mod s11_4_enum_templates;
mod s14_1_arbitration;
mod s14_2_weights;
mod s14_3_conditions;
mod s14_4_registration;
mod s14_5_flows;
mod s14_6_classify_contract;
mod s14_6_data_path;
mod s14_6_injection;
mod s14_7_stream;
mod s14_7_stream_waterfall;
mod s14_8_pend;
mod s14_9_mgmt;
mod s14_9_net_events;
mod s2_6_contract_events;
mod teardown;
