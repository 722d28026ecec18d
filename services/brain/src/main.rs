//! The brain service binary.

fn main() -> anyhow::Result<()> {
    aro_brain::runtime::main()
}
