//! Decision logic without I/O: the confidence gate, the escalation ladder and the guards.

pub(crate) mod choose;
pub(crate) mod guards;
pub(crate) mod ladder;
pub(crate) mod peers;
pub(crate) mod storm;
