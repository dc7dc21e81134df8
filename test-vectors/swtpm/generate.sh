#!/usr/bin/env bash
# Regenerate the swtpm test vectors in test-vectors/swtpm/ (see README.md).
#
#   bash test-vectors/swtpm/generate.sh
#
# Needs: swtpm, swtpm_setup (swtpm-tools), tpm2-tools, python3, openssl.
# Starts a throw-away software TPM listening on 127.0.0.1 only, on a random
# free port, and kills it on exit. Quotes, keys and signatures differ from run
# to run (fresh TPM seeds, clock); nonces, PCR values and the event log do not.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# --- tools -------------------------------------------------------------------
need_tools() {
    local missing=()
    for t in swtpm swtpm_setup tpm2_quote tpm2_checkquote tpm2_eventlog python3 openssl; do
        command -v "$t" >/dev/null 2>&1 || missing+=("$t")
    done
    if ((${#missing[@]})); then
        if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
            echo "installing swtpm/tpm2-tools (missing: ${missing[*]})" >&2
            DEBIAN_FRONTEND=noninteractive apt-get install -y swtpm swtpm-tools tpm2-tools openssl >&2 ||
                { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y swtpm swtpm-tools tpm2-tools openssl >&2; }
        else
            echo "missing tools: ${missing[*]} (apt-get install swtpm swtpm-tools tpm2-tools)" >&2
            exit 1
        fi
    fi
}
need_tools

WORK=$(mktemp -d)
STAGE=$WORK/out
mkdir -p "$STAGE/eventlog"
SWTPM_PID=""

stop_swtpm() {
    if [[ -n $SWTPM_PID ]]; then
        kill "$SWTPM_PID" 2>/dev/null || true
        wait "$SWTPM_PID" 2>/dev/null || true
        SWTPM_PID=""
    fi
}
cleanup() {
    stop_swtpm
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "== $*" >&2; }
die() { echo "ERROR: $*" >&2; exit 1; }

# A port P with P and P+1 both free on 127.0.0.1.
pick_port() {
    python3 - <<'EOF'
import random, socket
for _ in range(200):
    p = random.randint(20000, 60000)
    socks = []
    try:
        for q in (p, p + 1):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", q))
            socks.append(s)
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(p)
    break
else:
    raise SystemExit("no free port pair")
EOF
}

# start_swtpm <name>: fresh TPM state with sha1+sha256 banks, listening on
# 127.0.0.1:P (commands) and 127.0.0.1:P+1 (control).
start_swtpm() {
    local state=$WORK/tpm-$1
    mkdir -p "$state"
    swtpm_setup --tpm2 --tpm-state "$state" --pcr-banks sha1,sha256 --overwrite \
        >"$state/setup.log" 2>&1 || { cat "$state/setup.log" >&2; die "swtpm_setup failed"; }
    local port
    port=$(pick_port)
    swtpm socket --tpm2 \
        --server type=tcp,port="$port",bindaddr=127.0.0.1 \
        --ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
        --tpmstate dir="$state" \
        --flags not-need-init,startup-clear \
        --log file="$state/swtpm.log" &
    SWTPM_PID=$!
    export TPM2TOOLS_TCTI="swtpm:host=127.0.0.1,port=$port"
    local i
    for i in $(seq 1 100); do
        tpm2_getcap properties-fixed >/dev/null 2>&1 && break
        kill -0 "$SWTPM_PID" 2>/dev/null || die "swtpm exited (see $state/swtpm.log)"
        sleep 0.1
    done
    tpm2_getcap properties-fixed >/dev/null || die "swtpm did not come up"
    # Both banks must be allocated with all 24 PCRs.
    local caps
    caps=$(tpm2_getcap pcrs)
    for b in sha1 sha256; do
        grep -Eq "^ *- $b: \[ 0, 1, 2, .* 23 \]" <<<"$caps" || { echo "$caps" >&2; die "PCR bank $b not allocated"; }
    done
    log "swtpm ($1) pid $SWTPM_PID on 127.0.0.1:$port"
}

# Run a tpm2 tool, then flush transient objects: without a resource manager
# every loaded key stays in the TPM (3 slots) and the next load fails.
t() {
    "$@"
    tpm2_flushcontext -t
}

# Python helpers: signature conversion, byte flipping, checks.
cat >"$WORK/helper.py" <<'EOF'
import hashlib, json, re, struct, sys

def der_int(b):
    b = b.lstrip(b"\0") or b"\0"
    if b[0] & 0x80:
        b = b"\0" + b
    return b"\x02" + bytes([len(b)]) + b

def tpmt_signature_to_plain(data):
    """TPMT_SIGNATURE -> what `tpm2_quote -f plain` writes: raw RSA signature
    bytes, or a DER ECDSA-Sig-Value for ECDSA."""
    alg, _hash = struct.unpack(">HH", data[:4])
    if alg in (0x0014, 0x0016):  # RSASSA, RSAPSS
        (n,) = struct.unpack(">H", data[4:6])
        return data[6:6 + n]
    if alg == 0x0018:  # ECDSA
        (rn,) = struct.unpack(">H", data[4:6]); r = data[6:6 + rn]
        off = 6 + rn
        (sn,) = struct.unpack(">H", data[off:off + 2]); s = data[off + 2:off + 2 + sn]
        body = der_int(r) + der_int(s)
        assert len(body) < 128
        return b"\x30" + bytes([len(body)]) + body
    raise SystemExit("unknown sigAlg 0x%04x" % alg)

def parse_pcr_yaml(text):
    """tpm2_pcrread / tpm2_eventlog 'pcrs:' YAML -> {bank: {idx: hex}}."""
    out, bank = {}, None
    for line in text.splitlines():
        m = re.match(r"^\s+(sha1|sha256|sha384|sha512):\s*$", line)
        if m:
            bank = m.group(1); out.setdefault(bank, {}); continue
        m = re.match(r"^\s+(\d+)\s*:\s*0x([0-9A-Fa-f]+)\s*$", line)
        if m and bank:
            out[bank][m.group(1)] = m.group(2).lower()
    return out

cmd = sys.argv[1]
if cmd == "plain":
    open(sys.argv[3], "wb").write(tpmt_signature_to_plain(open(sys.argv[2], "rb").read()))
elif cmd == "flip":  # flip <in> <out> <offset|last>  (XOR 0x01), prints offset
    b = bytearray(open(sys.argv[2], "rb").read())
    off = len(b) - 1 if sys.argv[4] == "last" else int(sys.argv[4])
    b[off] ^= 0x01
    open(sys.argv[3], "wb").write(b)
    print(off)
elif cmd == "check-attest":  # TPMS_ATTEST of a quote: magic + TPM_ST_ATTEST_QUOTE
    b = open(sys.argv[2], "rb").read()
    if b[:6] != bytes.fromhex("ff5443478018"):
        raise SystemExit("%s: bad attest header %s" % (sys.argv[2], b[:6].hex()))
elif cmd == "check-pcrs":  # check-pcrs <file> <n-pcrs>
    size = len(open(sys.argv[2], "rb").read())
    n = int(sys.argv[3])
    want = 132 + 4 + ((n + 7) // 8) * 532
    if size != want:
        raise SystemExit("%s: %d bytes, expected %d" % (sys.argv[2], size, want))
elif cmd == "check-tpm2b-public":
    b = open(sys.argv[2], "rb").read()
    if struct.unpack(">H", b[:2])[0] != len(b) - 2:
        raise SystemExit("%s: not a TPM2B_PUBLIC" % sys.argv[2])
elif cmd == "compare-pcrs":  # compare-pcrs <expected.json> <yaml> <pcr,pcr,...|all>
    exp = json.load(open(sys.argv[2]))
    got = parse_pcr_yaml(open(sys.argv[3]).read())
    which = None if sys.argv[4] == "all" else sys.argv[4].split(",")
    bad = 0
    for bank, vals in exp.items():
        for idx, want in vals.items():
            if which is not None and idx not in which:
                continue
            have = got.get(bank, {}).get(idx)
            if have != want:
                print("mismatch %s:%s expected %s got %s" % (bank, idx, want, have), file=sys.stderr)
                bad += 1
    # tpm2_eventlog must not list PCRs we did not expect either.
    for bank, vals in got.items():
        for idx in vals:
            if which is not None and idx not in which:
                print("unexpected %s:%s" % (bank, idx), file=sys.stderr); bad += 1
    sys.exit(1 if bad else 0)
else:
    raise SystemExit("unknown command " + cmd)
EOF
py() { python3 "$WORK/helper.py" "$@"; }

nonce_for() { printf '%s' "$1" | sha256sum | cut -c1-40; }
WRONG_NONCE=deadbeefdeadbeefdeadbeefdeadbeefdeadbeef

KEY_ATTRS='fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign'
# name  tpm2_create -G            quote/scheme hash  quote --scheme
AKS=(
    "rsa-rsassa        rsa2048:rsassa-sha256:null sha256 rsassa"
    "rsa-rsassa-other  rsa2048:rsassa-sha256:null sha256 rsassa"
    "rsa-rsapss        rsa2048:rsapss-sha256:null sha256 rsapss"
    "ecc-p256          ecc256:ecdsa-sha256:null   sha256 ecdsa"
    "ecc-p384          ecc384:ecdsa-sha384:null   sha384 ecdsa"
)
declare -A AK_HASH AK_SCHEME
for a in "${AKS[@]}"; do
    read -r name _ hash scheme <<<"$a"
    AK_HASH[$name]=$hash
    AK_SCHEME[$name]=$scheme
done

# make_ak <primary ctx> <out prefix> <-G alg>: restricted signing key; writes
# <prefix>.ctx (context, work dir only), .pub (TPM2B_PUBLIC), .pem, .name
make_ak() {
    local primary=$1 prefix=$2 alg=$3
    t tpm2_create -Q -C "$primary" -g sha256 -G "$alg" -a "$KEY_ATTRS" \
        -u "$WORK/$(basename "$prefix").pubblob" -r "$WORK/$(basename "$prefix").priv" \
        -c "$WORK/$(basename "$prefix").ctx"
    t tpm2_readpublic -Q -c "$WORK/$(basename "$prefix").ctx" -f tss -o "$prefix.pub" -n "$prefix.name"
    t tpm2_readpublic -Q -c "$WORK/$(basename "$prefix").ctx" -f pem -o "$prefix.pem"
    py check-tpm2b-public "$prefix.pub"
}

# verify_openssl <pem> <attest> <tpmt sig> <hash> <scheme>: independent check.
verify_openssl() {
    local pem=$1 attest=$2 sig=$3 hash=$4 scheme=$5 plain=$WORK/verify.plain
    py plain "$sig" "$plain"
    local opts=()
    [[ $scheme == rsapss ]] && opts=(-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32)
    openssl dgst "-$hash" -verify "$pem" "${opts[@]}" -signature "$plain" "$attest" >/dev/null ||
        die "openssl does not verify $attest / $sig"
}

cd "$STAGE"

########################################################################
# Part 1: quotes with four AKs
########################################################################
start_swtpm quotes

# Fixed, documented PCR extensions so the quoted PCRs are not all zero.
: >pcr-extends.txt
for pcr in 0 1 7 16; do
    s1=$(printf 'trustpool pcr %d' "$pcr" | sha1sum | cut -c1-40)
    s256=$(printf 'trustpool pcr %d' "$pcr" | sha256sum | cut -c1-64)
    tpm2_pcrextend "$pcr:sha1=$s1,sha256=$s256"
    echo "$pcr $s1 $s256" >>pcr-extends.txt
done
tpm2_pcrread sha1:0,1,2,3,4,5,6,7,16+sha256:0,1,2,3,4,5,6,7,16 >pcrread.yaml

log "creating primary and attestation keys"
t tpm2_createprimary -Q -C o -g sha256 -G ecc256 -c "$WORK/primary.ctx"
for a in "${AKS[@]}"; do
    read -r name alg _ _ <<<"$a"
    make_ak "$WORK/primary.ctx" "$name" "$alg"
done

# quote <case> <ak> <selection> <n-pcrs>
quote() {
    local case=$1 ak=$2 sel=$3 n=$4
    local nonce
    nonce=$(nonce_for "$case")
    t tpm2_quote -Q -c "$WORK/$ak.ctx" -l "$sel" -q "$nonce" -g "${AK_HASH[$ak]}" --scheme "${AK_SCHEME[$ak]}" \
        -m "$case.attest" -s "$case.sig" -o "$case.pcrs"
    py check-attest "$case.attest"
    py check-pcrs "$case.pcrs" "$n"
    verify_openssl "$ak.pem" "$case.attest" "$case.sig" "${AK_HASH[$ak]}" "${AK_SCHEME[$ak]}"
}

log "quoting"
POSITIVE=()
for ak in rsa-rsassa rsa-rsapss ecc-p256 ecc-p384; do
    quote "$ak.sha256" "$ak" sha256:0,1,2,3,4,5,6,7 8
    quote "$ak.sha1" "$ak" sha1:0,1,2,3,4,5,6,7,16 9
    POSITIVE+=("$ak.sha256 $ak" "$ak.sha1 $ak")
done
quote "ecc-p256.sha1+sha256" ecc-p256 sha1:0,1,7+sha256:0,1,7 6
POSITIVE+=("ecc-p256.sha1+sha256 ecc-p256")

# Signatures also in the `tpm2_quote -f plain` form (raw RSA / DER ECDSA).
for c in rsa-rsassa.sha256 ecc-p256.sha256; do
    py plain "$c.sig" "$c.sig.plain"
    ak=${c%%.*}
    openssl dgst "-${AK_HASH[$ak]}" -verify "$ak.pem" -signature "$c.sig.plain" "$c.attest" >/dev/null ||
        die "$c.sig.plain does not verify"
done

log "negative cases"
printf 'file\tfrom\toffset\txor\n' >flips.tsv
FLIP_BASES=(ecc-p256.sha256 rsa-rsassa.sha256 rsa-rsapss.sha256 ecc-p384.sha256 rsa-rsassa.sha1 "ecc-p256.sha1+sha256")
for c in "${FLIP_BASES[@]}"; do
    off=$(py flip "$c.attest" "$c.attest-flipped" last) # last byte of pcrDigest
    printf '%s\t%s\t%s\t0x01\n' "$c.attest-flipped" "$c.attest" "$off" >>flips.tsv
    off=$(py flip "$c.sig" "$c.sig-flipped" last) # last byte of RSA sig / ECDSA s
    printf '%s\t%s\t%s\t0x01\n' "$c.sig-flipped" "$c.sig" "$off" >>flips.tsv
    off=$(py flip "$c.pcrs" "$c.pcrs-flipped" 142) # first byte of first PCR value
    printf '%s\t%s\t%s\t0x01\n' "$c.pcrs-flipped" "$c.pcrs" "$off" >>flips.tsv
done

stop_swtpm

########################################################################
# Part 2: synthetic event log replayed into a fresh TPM, then quoted
########################################################################
log "event log"
python3 "$HERE/eventlog/make_log.py" "$STAGE/eventlog"
python3 "$HERE/eventlog/make_log.py" "$WORK" # determinism check
for f in synthetic.bin extends.txt expected-pcrs.json; do
    cmp -s "$WORK/$f" "eventlog/$f" || die "make_log.py is not deterministic ($f)"
done

start_swtpm eventlog
while read -r pcr s1 s256; do
    tpm2_pcrextend "$pcr:sha1=$s1,sha256=$s256"
done <eventlog/extends.txt
ALL24=$(seq -s, 0 23)
tpm2_pcrread "sha1:$ALL24+sha256:$ALL24" >"$WORK/el-pcrread.yaml"
py compare-pcrs eventlog/expected-pcrs.json "$WORK/el-pcrread.yaml" all ||
    die "TPM PCRs after replay differ from eventlog/expected-pcrs.json"

t tpm2_createprimary -Q -C o -g sha256 -G ecc256 -c "$WORK/el-primary.ctx"
make_ak "$WORK/el-primary.ctx" eventlog/ak ecc256:ecdsa-sha256:null
AK_HASH[eventlog/ak]=sha256
AK_SCHEME[eventlog/ak]=ecdsa
EL_NONCE=$(nonce_for eventlog.quote)
echo "$EL_NONCE" >eventlog/nonce.hex
t tpm2_quote -Q -c "$WORK/ak.ctx" -l "sha1:0,1,2,3,4,5,6,7+sha256:0,1,2,3,4,5,6,7,8" -q "$EL_NONCE" \
    -g sha256 --scheme ecdsa -m eventlog/quote.attest -s eventlog/quote.sig -o eventlog/quote.pcrs
py check-attest eventlog/quote.attest
py check-pcrs eventlog/quote.pcrs 17
verify_openssl eventlog/ak.pem eventlog/quote.attest eventlog/quote.sig sha256 ecdsa
stop_swtpm

el_rc=0
tpm2_eventlog eventlog/synthetic.bin >eventlog/tpm2_eventlog.yaml 2>"$WORK/el.stderr" || el_rc=$?
[[ $el_rc == 0 ]] || { cat "$WORK/el.stderr" >&2; die "tpm2_eventlog rejected synthetic.bin"; }
py compare-pcrs eventlog/expected-pcrs.json eventlog/tpm2_eventlog.yaml 0,1,2,3,4,5,6,7,8 ||
    die "tpm2_eventlog's replay differs from expected-pcrs.json"
el_check=fail
tpm2_checkquote -u eventlog/ak.pem -m eventlog/quote.attest -s eventlog/quote.sig -f eventlog/quote.pcrs \
    -g sha256 -q "$EL_NONCE" >/dev/null 2>&1 && el_check=ok
{
    echo "# checks made by generate.sh on $(date -u +%Y-%m-%d)"
    echo "TPM PCRs (sha1+sha256, all 24) after replaying extends.txt == expected-pcrs.json: yes"
    echo "tpm2_eventlog exit status: $el_rc"
    echo "tpm2_eventlog pcrs section (PCRs 0-8, both banks) == expected-pcrs.json: yes"
    echo "tpm2_eventlog stderr:"
    sed 's/^/  /' "$WORK/el.stderr"
    echo "openssl verifies quote.sig over quote.attest with ak.pem: yes"
    echo "tpm2_checkquote on quote.*: $el_check"
} >eventlog/checks.txt

########################################################################
# MANIFEST.tsv: run tpm2_checkquote on every row and record what it said
########################################################################
log "manifest"
ver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo unknown; }
{
    echo "# generated $(date -u +%Y-%m-%d) by test-vectors/swtpm/generate.sh with swtpm $(ver swtpm) (libtpms $(ver libtpms0)), tpm2-tools $(ver tpm2-tools), tpm2-tss $(ver libtss2-esys-3.0.2-0)"
    printf 'case\tak\tattest\tsignature\tpcrs\tnonce_hex\texpected\ttpm2_checkquote\n'
} >MANIFEST.tsv

# row <case> <ak> <attest> <sig> <pcrs> <nonce> <expected>
row() {
    local case=$1 ak=$2 attest=$3 sig=$4 pcrs=$5 nonce=$6 expected=$7 got=fail
    if tpm2_checkquote -u "$ak.pem" -m "$attest" -s "$sig" -f "$pcrs" -g "${AK_HASH[$ak]}" -q "$nonce" \
        >/dev/null 2>"$WORK/cq.err"; then
        got=ok
    fi
    if [[ $got == ok && $expected != ok ]] || [[ $got != ok && $expected == ok ]]; then
        echo "   note: tpm2_checkquote says $got for $case (expected $expected): $(tr '\n' ' ' <"$WORK/cq.err" | cut -c1-200)" >&2
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$case" "$ak" "$attest" "$sig" "$pcrs" "$nonce" "$expected" "$got" >>MANIFEST.tsv
}

for p in "${POSITIVE[@]}"; do
    read -r c ak <<<"$p"
    row "$c" "$ak" "$c.attest" "$c.sig" "$c.pcrs" "$(nonce_for "$c")" ok
done
row eventlog.quote eventlog/ak eventlog/quote.attest eventlog/quote.sig eventlog/quote.pcrs "$EL_NONCE" ok

for c in "${FLIP_BASES[@]}"; do
    ak=${c%%.*}
    n=$(nonce_for "$c")
    row "$c:wrong-nonce" "$ak" "$c.attest" "$c.sig" "$c.pcrs" "$WRONG_NONCE" nonce-mismatch
    row "$c:attest-flipped" "$ak" "$c.attest-flipped" "$c.sig" "$c.pcrs" "$n" bad-signature
    row "$c:sig-flipped" "$ak" "$c.attest" "$c.sig-flipped" "$c.pcrs" "$n" bad-signature
    row "$c:pcrs-flipped" "$ak" "$c.attest" "$c.sig" "$c.pcrs-flipped" "$n" pcr-digest-mismatch
done
c=ecc-p256.sha256
row "$c:wrong-key" rsa-rsassa "$c.attest" "$c.sig" "$c.pcrs" "$(nonce_for $c)" scheme-mismatch
c=rsa-rsapss.sha256
row "$c:wrong-key" rsa-rsassa "$c.attest" "$c.sig" "$c.pcrs" "$(nonce_for $c)" scheme-mismatch
c=rsa-rsassa.sha256
row "$c:wrong-key" rsa-rsassa-other "$c.attest" "$c.sig" "$c.pcrs" "$(nonce_for $c)" bad-signature

########################################################################
# Install: replace the previously generated files with the new ones
########################################################################
cd "$HERE"
rm -f -- *.pub *.pem *.name *.attest *.attest-flipped *.sig *.sig.plain *.sig-flipped *.pcrs *.pcrs-flipped \
    MANIFEST.tsv flips.tsv pcr-extends.txt pcrread.yaml
rm -f -- eventlog/ak.pub eventlog/ak.pem eventlog/ak.name eventlog/quote.attest eventlog/quote.sig \
    eventlog/quote.pcrs eventlog/nonce.hex eventlog/synthetic.bin eventlog/extends.txt \
    eventlog/expected-pcrs.json eventlog/tpm2_eventlog.yaml eventlog/checks.txt
cp -p "$STAGE"/*.* "$HERE/"
cp -p "$STAGE"/eventlog/* "$HERE/eventlog/"
chmod 644 "$HERE"/*.* "$HERE"/eventlog/*
chmod 755 "$HERE/generate.sh" "$HERE/eventlog/make_log.py"
log "done: $(grep -vc '^#' "$HERE/MANIFEST.tsv") MANIFEST lines (incl. header) in $HERE"
