//! Cross-module tests: builders from `testutil`, conversations driven by a fake clock, and
//! property tests against naive models.

mod conversation;
mod flow;
mod frag;
mod pipeline;
mod reasm;
mod reuse;
mod stream;
mod wire;
