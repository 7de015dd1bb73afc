//! The etcd client's gRPC code is generated once and committed
//! (`vendor/etcd-client/src/rpc/pb/`), so that building signpost needs no
//! `protoc`. This test generates it again from `vendor/etcd-client/proto/`
//! with a pure-Rust protobuf compiler (protox) and the same code generator
//! the upstream crate's build script uses (tonic-prost-build), and fails when
//! the committed files differ: a changed .proto file or a generator upgrade
//! in Cargo.lock cannot leave stale code behind.
//!
//! `scripts/regen-etcd-proto.sh` writes the files instead of comparing them.

use std::path::{Path, PathBuf};

const PROTOS: [&str; 5] = [
    "auth.proto",
    "kv.proto",
    "rpc.proto",
    "v3election.proto",
    "v3lock.proto",
];

fn generate(out: &Path) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("vendor/etcd-client");
    let proto = root.join("proto");
    let files: Vec<PathBuf> = PROTOS.iter().map(|p| proto.join(p)).collect();
    let fds = protox::compile(&files, [&proto]).expect("the vendored .proto files compile");
    // the upstream build.rs: configure().build_server(false).compile_protos(..)
    tonic_prost_build::configure()
        .build_server(false)
        .emit_rerun_if_changed(false)
        .out_dir(out)
        .compile_fds(fds)
        .expect("code generation succeeds");
    let mut made: Vec<PathBuf> = std::fs::read_dir(out)
        .expect("output directory readable")
        .map(|e| e.expect("directory entry").path())
        .collect();
    made.sort();
    made
}

#[test]
fn committed_etcd_grpc_code_is_fresh() {
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("vendor/etcd-client/src/rpc/pb");
    let tmp = std::env::temp_dir().join(format!("signpost-etcd-proto-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temporary directory");
    let made = generate(&tmp);
    let regen = std::env::var_os("SIGNPOST_REGEN_ETCD_PROTO").is_some();
    let mut stale = Vec::new();
    for file in &made {
        let name = file.file_name().expect("generated file has a name");
        let new = std::fs::read_to_string(file).expect("generated file readable");
        let target = committed.join(name);
        if regen {
            std::fs::write(&target, &new).expect("write committed file");
            continue;
        }
        match std::fs::read_to_string(&target) {
            Ok(old) if old == new => {}
            Ok(_) => stale.push(format!("{} differs", target.display())),
            Err(e) => stale.push(format!("{} is missing: {e}", target.display())),
        }
    }
    // a committed file the generator no longer makes is stale too
    let names: Vec<_> = made.iter().filter_map(|p| p.file_name()).collect();
    for entry in std::fs::read_dir(&committed).expect("committed directory readable") {
        let path = entry.expect("directory entry").path();
        if !names
            .iter()
            .any(|n| Some(*n) == path.file_name().as_ref().copied())
        {
            stale.push(format!("{} is no longer generated", path.display()));
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(made.len() >= PROTOS.len(), "generated {made:?}");
    assert!(
        stale.is_empty(),
        "the committed etcd gRPC code is stale; run scripts/regen-etcd-proto.sh:\n{}",
        stale.join("\n")
    );
}
