#!/usr/bin/env bash
# Regenerates the etcd client's committed gRPC code
# (vendor/etcd-client/src/rpc/pb/) from vendor/etcd-client/proto/ with
# protox and tonic-prost-build, the versions in Cargo.lock. No protoc needed.
# tests/etcd_proto.rs fails while the committed code is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
SIGNPOST_REGEN_ETCD_PROTO=1 cargo test --locked --test etcd_proto -- --nocapture
git status --short vendor/etcd-client/src/rpc/pb
