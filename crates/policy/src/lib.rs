//! Recovery policy inputs, rule policy and the fault-and-recovery simulator.
