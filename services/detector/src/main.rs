use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = aro_detector::runtime::Args::parse();
    aro_detector::runtime::run(args).await
}
