//! Entry point of the deployer service.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let args = aro_deployer::runtime::Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(aro_deployer::runtime::run(args))
}
