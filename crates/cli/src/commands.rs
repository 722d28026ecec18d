//! One module per subcommand.

pub(crate) mod approve;
pub(crate) mod audit;
pub(crate) mod bench;
pub(crate) mod demo;
pub(crate) mod faults;
pub(crate) mod health;
pub(crate) mod inject;
pub(crate) mod local;
pub(crate) mod status;
