#!/usr/bin/env bash
# Builds the Cortex-M4 firmware in both configurations, runs each under QEMU (mps2-an386), checks
# the verdicts (QEMU's exit status is the firmware's), measures flash, static RAM, peak stack,
# heap and instructions per verification, fails if a figure exceeds budgets.txt, and prints the
# footprint table.
#
# Needs: rustup target thumbv7em-none-eabihf, qemu-system-arm (Debian qemu-system-arm),
# arm-none-eabi-size and arm-none-eabi-nm (Debian binutils-arm-none-eabi).
# Env: CARGO_TARGET_DIR (default: ./target), QEMU_TIMEOUT seconds per run (default 120).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

TARGET=thumbv7em-none-eabihf
target_dir=${CARGO_TARGET_DIR:-$here/target}
export CARGO_TARGET_DIR=$target_dir
QEMU_TIMEOUT=${QEMU_TIMEOUT:-120}
out_dir=$target_dir/cortex-m-footprint
mkdir -p "$out_dir"

for tool in qemu-system-arm arm-none-eabi-size arm-none-eabi-nm timeout; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool not found" >&2; exit 2; }
done
rustup target list --installed 2>/dev/null | grep -qx "$TARGET" || rustup target add "$TARGET"

# budgets.txt: "<config> <metric> <max>" lines; '#' starts a comment.
budget() { awk -v c="$1" -v m="$2" '!/^#/ && $1 == c && $2 == m { print $3; found = 1 } END { if (!found) print "" }' budgets.txt; }

# Sum of the named sections' sizes in `arm-none-eabi-size -A` output.
sections() { # sections <elf> <section...>
  local elf=$1; shift
  arm-none-eabi-size -A "$elf" | awk -v want=" $* " 'index(want, " " $1 " ") { s += $2 } END { print s + 0 }'
}

# Value of a "key: value" line of the firmware's output.
field() { awk -v k="$1:" '$1 == k { print $2; exit }' "$2"; }

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
rows=()

run_config() { # run_config <name> <cargo feature args...>
  local name=$1; shift
  echo "== $name: build"
  # Not --locked: Cargo.lock here pins the embedded crates, and cargo adds whatever a new
  # dependency of trustpool-core needs instead of failing.
  cargo build --release --quiet "$@"
  local elf=$out_dir/trustpool-cortex-m-$name.elf log=$out_dir/$name.log
  cp "$target_dir/$TARGET/release/trustpool-cortex-m" "$elf"

  echo "== $name: run under QEMU (timeout ${QEMU_TIMEOUT}s)"
  local status=0
  timeout "$QEMU_TIMEOUT" qemu-system-arm -cpu cortex-m4 -machine mps2-an386 -nographic \
    -semihosting-config enable=on,target=native -icount shift=0 -kernel "$elf" >"$log" 2>&1 || status=$?
  sed 's/^/   | /' "$log"
  if [ "$status" -eq 124 ]; then fail "$name: QEMU timed out"; return; fi
  [ "$status" -eq 0 ] || fail "$name: firmware exited with status $status"
  grep -qx 'verdict: trusted' "$log" || fail "$name: genuine evidence not trusted"
  grep -q '^tampered: untrusted' "$log" || fail "$name: tampered attest not rejected"
  grep -qx 'result: pass' "$log" || fail "$name: firmware did not report 'result: pass'"
  if [ "$name" = p256-appraise ]; then
    grep -qx 'appraisal: trusted' "$log" || fail "$name: genuine evidence not trusted by the appraisal"
    grep -q '^appraisal-tampered: untrusted' "$log" || fail "$name: tampered log not rejected by the appraisal"
  fi

  # Flash image: what is loaded into FLASH (vector table, code, constants, .data's initial
  # values). Static RAM: .data + .bss + .uninit (includes the heap arena when there is one).
  local flash ram stack heap insns insns_log calib
  flash=$(sections "$elf" .vector_table .text .rodata .data)
  ram=$(sections "$elf" .data .bss .uninit)
  stack=$(field stack-peak "$log")
  heap=$(field heap-peak "$log")
  insns=$(field instructions-verify "$log")
  insns_log=$(field instructions-eventlog "$log")
  calib=$(awk '/^calibration:/ { print $5 }' "$log")
  [ "$calib" = 50000 ] || fail "$name: calibration loop took ${calib:-?} ticks, expected 50000 (is -icount shift=0 in effect?)"

  if [ "$name" != alloc-rsa ] && arm-none-eabi-nm "$elf" | grep -q '__rust_alloc\b\|__rg_alloc'; then
    fail "$name: the firmware links a global allocator"
  fi

  local metric value max
  for metric in flash static-ram stack heap instructions-verify instructions-eventlog; do
    case $metric in
      flash) value=$flash ;; static-ram) value=$ram ;; stack) value=$stack ;; heap) value=$heap ;;
      instructions-verify) value=$insns ;; instructions-eventlog) value=$insns_log ;;
    esac
    max=$(budget "$name" "$metric")
    [ -n "$max" ] || continue
    if [ -z "$value" ]; then fail "$name: no $metric figure"; continue; fi
    [ "$value" -le "$max" ] || fail "$name: $metric $value exceeds the budget $max"
  done
  rows+=("$name|$flash|$ram|${stack:-?}|${heap:-?}|${insns:-?}|${insns_log:--}")
}

run_config p256-noalloc
run_config p256-appraise --features appraise
run_config alloc-rsa --features alloc-rsa

kib() { awk -v b="$1" 'BEGIN { if (b == "0") print "0"; else if (b ~ /^[0-9]+$/) printf "%d (%.1f KiB)", b, b / 1024; else print b }'; }
mega() { awk -v n="$1" 'BEGIN { if (n ~ /^[0-9]+$/) printf "%.2f M", n / 1e6; else print n }'; }
echo
echo "Footprint (Cortex-M4, thumbv7em-none-eabihf, opt-level s + LTO; bytes; instructions under QEMU -icount):"
echo
echo "| config | flash | static RAM | peak stack | heap peak | instructions / quote verification | instructions / event log replay |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for r in "${rows[@]}"; do
  IFS='|' read -r name flash ram stack heap insns insns_log <<<"$r"
  echo "| $name | $(kib "$flash") | $(kib "$ram") | $(kib "$stack") | $(kib "$heap") | $(mega "$insns") | $(mega "$insns_log") |"
done
echo
if [ "$failures" -gt 0 ]; then
  echo "cortex-m: $failures check(s) failed" >&2
  exit 1
fi
echo "cortex-m: both configurations verified; every figure within budgets.txt"
