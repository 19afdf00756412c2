#!/usr/bin/env bash
# Builds, on this machine (x86-64, Rust), the GPU check's bundle in gpu-bundle/: everything one
# call on a GPU machine without Rust needs (docs/gpu.md, "The GPU check"):
#   ringdet            the release binary (parity, perf-detect, demo on the device)
#   tests.tar.gz       every test binary that holds a GPU or NVRTC test (kernel parity of all
#                      families, the whole training step on CUDA, the device collectives)
#   benches/gpu_*      the GPU bench executables (kernel timings against the device's ceilings)
#   golden/            golden_meta.json, inputs.safetensors, weights.safetensors of
#                      testdata/ppyoloe-golden (parity of the device against the CPU on
#                      PaddleDetection's weights; the reference tensors do not fit a device call)
#   run.sh             the runner (scripts/gpu-run.sh): bash gpu-bundle/run.sh
# A device call carries at most 64 MiB with the working tree: the script fails when the bundle
# and the tracked files (without testdata/ppyoloe-golden, which must be moved out of the tree
# for the call) exceed it.
#
#   --ci   reuse the test build of `cargo test` (no stripped rebuild, no benches, no size check):
#          proves in CI that the bundle builds and that its runner stops cleanly without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-full}
bundle=gpu-bundle
limit=$((64 << 20))
rm -rf "$bundle"
mkdir -p "$bundle/tests" "$bundle/benches" "$bundle/golden"

if [ "$mode" != "--ci" ]; then
    # Without debug info the binaries are a fraction of the size (86 MiB of test binaries with
    # line tables on 2026-11-27, 34 MiB without).
    export CARGO_PROFILE_TEST_DEBUG=false CARGO_PROFILE_TEST_STRIP=debuginfo
    export CARGO_PROFILE_BENCH_DEBUG=false CARGO_PROFILE_BENCH_STRIP=debuginfo
    export CARGO_PROFILE_RELEASE_STRIP=debuginfo
fi

# Test targets whose source asks for a GPU or NVRTC (gpu_or_skip / nvrtc_or_skip / REQUIRE_GPU).
echo "== test binaries with GPU tests" >&2
cargo test --workspace --no-run --message-format=json 2>/dev/null | python3 -c '
import json, re, sys
pattern = re.compile(r"gpu_or_skip|nvrtc_or_skip|REQUIRE_GPU")
seen = set()
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    t = m["target"]
    if "test" not in t["kind"] or t["name"] in seen:
        continue
    try:
        src = open(t["src_path"]).read()
    except OSError:
        continue
    if pattern.search(src):
        seen.add(t["name"])
        print(t["name"], m["executable"])
' | while read -r name exe; do cp "$exe" "$bundle/tests/$name"; done
ls "$bundle/tests" | sed 's/^/   /' >&2
tar czf "$bundle/tests.tar.gz" -C "$bundle" tests
rm -rf "$bundle/tests"

echo "== the ringdet binary" >&2
if [ "$mode" = "--ci" ]; then
    cargo build -p ringdet-launch --bin ringdet
    cp target/debug/ringdet "$bundle/"
else
    cargo build --release -p ringdet-launch --bin ringdet
    cp target/release/ringdet "$bundle/"
    echo "== GPU benches (bench targets named gpu_*)" >&2
    cargo bench --workspace --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and "bench" in m["target"]["kind"] \
            and m["target"]["name"].startswith("gpu_") and m.get("executable"):
        print(m["target"]["name"], m["executable"])
' | while read -r name exe; do cp "$exe" "$bundle/benches/$name"; done
fi

for f in golden_meta.json inputs.safetensors weights.safetensors; do
    cp "testdata/ppyoloe-golden/$f" "$bundle/golden/"
done
cp scripts/gpu-run.sh "$bundle/run.sh"
chmod +x "$bundle/run.sh"

bundle_bytes=$(du -sb "$bundle" | cut -f1)
tree_bytes=$(git ls-files -z | grep -zv '^testdata/ppyoloe-golden/' | xargs -0 du -cb | tail -1 | cut -f1)
total=$((bundle_bytes + tree_bytes))
awk -v b="$bundle_bytes" -v t="$tree_bytes" 'BEGIN { m = 1048576; printf "bundle %.1f MiB + tracked files without testdata/ppyoloe-golden %.1f MiB = %.1f MiB (a device call carries 64)\n", b / m, t / m, (b + t) / m }' >&2
if [ "$mode" != "--ci" ] && [ "$total" -gt "$limit" ]; then
    echo "the bundle does not fit one device call: $total bytes > $limit" >&2
    exit 1
fi
cat >&2 <<EOF
bundle ready: $bundle
for the device call: mv testdata/ppyoloe-golden /tmp/ (put it back after), carry $bundle, run:
    bash $bundle/run.sh        (results under \$OUT: gpu-check.json, gpu-check.md, logs)
EOF
