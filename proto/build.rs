fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure().compile_protos(
        &[
            "proto/fstore/v1/registry.proto",
            "proto/fstore/v1/features.proto",
        ],
        &["proto"],
    )?;
    Ok(())
}
