//! Cross-module tests: builders from `testutil`, conversations driven by a fake clock, and
//! property tests against naive models.

mod async_prop;
mod asyncs;
mod conversation;
mod flow;
mod frag;
mod host;
mod offload;
mod oob_fin;
mod outer;
mod pipeline;
mod reasm;
mod redirect;
mod reuse;
mod shares;
mod stream;
mod wire;
