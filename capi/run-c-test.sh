#!/usr/bin/env bash
# Builds the C API static library, checks that the committed header matches what cbindgen
# generates, compiles tests/test.c with gcc against them, and runs it on the shipped swtpm
# evidence, with a whitelist learned from that evidence by the CLI (for tp_appraise).
#
#   capi/run-c-test.sh                  build, check the header, compile and run the C test
#   capi/run-c-test.sh --update-header  regenerate capi/include/trustpool.h first
#
# Needs: gcc, cbindgen (cargo install cbindgen --locked). Env: CARGO_TARGET_DIR (default:
# the workspace's target/), CAPI_FEATURES (default: rsa, on top of the crate's defaults),
# CAPI_SANITIZE=0 to build the C test without ASan/UBSan.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"
target_dir=${CARGO_TARGET_DIR:-$root/target}
export CARGO_TARGET_DIR=$target_dir
features=${CAPI_FEATURES-rsa}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for tool in gcc cbindgen; do
  command -v "$tool" >/dev/null || { echo "run-c-test.sh: $tool not found (cbindgen: cargo install cbindgen --locked)" >&2; exit 2; }
done

echo "== C header (cbindgen $(cbindgen --version | awk '{print $2}'))"
(cd "$here" && cbindgen --quiet --config cbindgen.toml --output "$work/trustpool.h")
if [ "${1:-}" = --update-header ]; then
  cp "$work/trustpool.h" "$here/include/trustpool.h"
  echo "updated capi/include/trustpool.h"
elif ! diff -u "$here/include/trustpool.h" "$work/trustpool.h"; then
  echo "capi/include/trustpool.h is out of date: run capi/run-c-test.sh --update-header" >&2
  exit 1
else
  echo "capi/include/trustpool.h is up to date"
fi

echo "== static library (features: default${features:+,$features})"
cargo build -p trustpool-capi --release --locked --quiet ${features:+--features "$features"}
lib=$target_dir/release/libtrustpool_capi.a
# The system libraries Rust's std needs, as rustc reports them (glibc list as fallback).
native=$(cargo rustc -p trustpool-capi --release --locked --quiet ${features:+--features "$features"} \
  --crate-type staticlib -- --print native-static-libs 2>&1 |
  sed -n 's/.*native-static-libs: //p' | tail -n 1)
native=${native:--lgcc_s -lutil -lrt -lpthread -lm -ldl -lc}
echo "link: $lib $native"

echo "== compile tests/test.c (gcc)"
sanitize=()
if [ "${CAPI_SANITIZE:-1}" != 0 ]; then
  sanitize=(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
fi
# shellcheck disable=SC2086 # $native is a list of linker flags
gcc -std=c11 -Wall -Wextra -Wpedantic -Werror -O1 -g "${sanitize[@]}" -I "$here/include" \
  "$here/tests/test.c" "$lib" $native -o "$work/trustpool-c-test"

echo "== whitelist learned from the test vectors (trustpool policy learn, compile)"
ev=$root/test-vectors/swtpm/eventlog
cargo run -q -p trustpool --locked -- policy learn --eventlog "$ev/synthetic.bin" \
  --pcrs "$ev/quote.pcrs" --ak "$ev/ak.pub" >"$work/learned.toml"
cargo run -q -p trustpool --locked -- policy compile "$work/learned.toml" -o "$work/learned.tpw"

echo "== run"
"$work/trustpool-c-test" "$root/test-vectors/swtpm" "$work/learned.tpw"
