#!/usr/bin/env bash
# Builds, on this machine (x86-64, Rust), everything the GPU tests and GPU benches need into
# gpu-bundle/, which can be carried to a GPU machine that has no Rust: a nextest archive of every
# test binary, the cargo-nextest binary, the GPU bench executables and gpu-bundle/run.sh, the
# runner to start there. docs/gpu.md says how to run it in one call.
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=gpu-bundle
rm -rf "$bundle"
mkdir -p "$bundle/benches"

command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
# Only the packages that hold GPU tests: the bundle must stay well under the 64 MiB a device
# call can carry.
gpu_packages=(-p ringdet-tensor -p ringdet-kernels -p ringdet-detect)
echo "== archiving test binaries" >&2
cargo nextest archive "${gpu_packages[@]}" --archive-file "$bundle/tests.tar.zst"
cp "$(command -v cargo-nextest)" "$bundle/"
echo "== building the ringdet binary" >&2
cargo build --release -p ringdet-launch
cp target/release/ringdet "$bundle/"

echo "== building GPU benches (bench targets named gpu_*)" >&2
cargo bench --workspace --no-run --message-format=json 2>/dev/null \
    | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and "bench" in m["target"]["kind"] \
            and m["target"]["name"].startswith("gpu_") and m.get("executable"):
        print(m["target"]["name"], m["executable"])
' | while read -r name exe; do cp "$exe" "$bundle/benches/$name"; done

cp scripts/gpu-run.sh "$bundle/run.sh"
chmod +x "$bundle/run.sh"
du -sh "$bundle" >&2
echo "bundle ready: $bundle (carry it; run: bash $bundle/run.sh)" >&2
