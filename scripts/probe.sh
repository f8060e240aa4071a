#!/usr/bin/env bash
# Hostile inputs against the `aha` binary, as a new user would try them:
# each case is classified as
#   crash   a panic (101), an abort (134), a signal, or a hang (timeout)
#   silent  exit 0 where an error was due, or an output that is wrong
#   unclear an error whose message does not name the thing at fault
#   ok      a clear error naming it (or, for a case that should work, success)
# and a table plus the counts are printed. Usage:
#   scripts/probe.sh [path/to/aha]      (default: target/release/aha, else target/debug/aha)
# Needs python3 (to make the hostile files). Each case runs under a 60 s
# timeout and a 12 GB address-space limit, so an unchecked allocation fails
# instead of swapping. Takes about a minute with a release build.
set -uo pipefail
cd "$(dirname "$0")/.."
AHA=${1:-}
if [ -z "$AHA" ]; then
    for c in target/release/aha target/debug/aha; do [ -x "$c" ] && AHA=$c && break; done
fi
[ -x "$AHA" ] || { echo "no aha binary (give its path)"; exit 2; }
AHA=$(realpath "$AHA")
FIX=$(realpath tests/fixtures/qwen2-tokenizer)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export NO_COLOR=1

declare -i N_CRASH=0 N_SILENT=0 N_UNCLEAR=0 N_OK=0
ROWS=()
row() { ROWS+=("$(printf '%-8s %-34s %s' "$1" "$2" "$3")"); }
tally() {
    case $1 in crash) N_CRASH+=1 ;; silent) N_SILENT+=1 ;; unclear) N_UNCLEAR+=1 ;; ok) N_OK+=1 ;; esac
    row "$@"
}

# run NAME -- CMD...: runs CMD with limits, sets RC, OUT, ERR.
run() {
    local out=$T/.out err=$T/.err
    { ( ulimit -v 12000000; timeout 60 "$@" >"$out" 2>"$err" </dev/null ); } 2>/dev/null
    RC=$?
    OUT=$(head -c 4000 "$out"); ERR=$(head -c 4000 "$err")
}

crashed() { # true (and tallied) if RC says crash
    local name=$1
    if [ "$RC" -eq 124 ]; then tally crash "$name" "hang (timeout)"; return 0; fi
    if [ "$RC" -ge 100 ] || grep -q "panicked" <<<"$ERR"; then
        tally crash "$name" "exit $RC: $(grep -m1 -E 'panicked|memory|abort|error' <<<"$ERR" | cut -c1-90)"
        return 0
    fi
    return 1
}

# expect_error NAME 'regex' CMD...: must fail with status 1 and a message
# matching every |-free regex given in the first argument (separated by ;;).
expect_error() {
    local name=$1 needles=$2; shift 2
    run "$@"
    crashed "$name" && return
    local first
    first=$(grep -m1 -v '^\s*$' <<<"$ERR" | cut -c1-110)
    if [ "$RC" -eq 0 ]; then tally silent "$name" "exit 0: $(head -c 80 <<<"$OUT" | tr '\n' ' ')"; return; fi
    local IFS=';'
    for n in $needles; do
        [ -z "$n" ] && continue
        if ! grep -qiE -- "$n" <<<"$ERR"; then tally unclear "$name" "no /$n/: $first"; return; fi
    done
    tally ok "$name" "$first"
}

# expect_success NAME 'check command' CMD...: must exit 0 and pass the check.
expect_success() {
    local name=$1 check=$2; shift 2
    run "$@"
    crashed "$name" && return
    if [ "$RC" -ne 0 ]; then tally unclear "$name" "fails: $(grep -m1 -v '^\s*$' <<<"$ERR" | cut -c1-100)"; return; fi
    if ! (eval "$check") >/dev/null 2>&1; then tally silent "$name" "exit 0 but wrong: $check"; return; fi
    tally ok "$name" "works"
}

# expect_quiet_pipe NAME CMD...: CMD | head -c 1 must end without a message
# (status 0, or 141 as if killed by SIGPIPE).
expect_quiet_pipe() {
    local name=$1; shift
    ( ulimit -v 12000000; timeout 60 "$@" 2>"$T/.err" </dev/null | head -c 1 >/dev/null; exit "${PIPESTATUS[0]}" )
    RC=$?
    ERR=$(head -c 4000 "$T/.err")
    # 141 is the expected end here (128 + SIGPIPE), not a crash.
    if [ "$RC" -ne 141 ]; then crashed "$name" && return; fi
    if [ "$RC" -ne 0 ] && [ "$RC" -ne 141 ] || [ -n "$(grep -v '^\s*$' <<<"$ERR" | grep -vi 'tok/s\|wrote\|note:')" ]; then
        tally unclear "$name" "exit $RC: $(head -c 90 <<<"$ERR" | tr '\n' ' ')"
        return
    fi
    tally ok "$name" "quiet (exit $RC)"
}

# --- the hostile files -------------------------------------------------------
python3 - "$FIX" "$T" <<'EOF'
import json, os, shutil, struct, sys
fix, t = sys.argv[1], sys.argv[2]

def read_st(path):
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n])
    meta = h.pop('__metadata__', None)
    data = b[8 + n:]
    return {k: (v['dtype'], v['shape'], bytearray(data[v['data_offsets'][0]:v['data_offsets'][1]])) for k, v in h.items()}, meta

def write_st(path, tensors, meta=None, raw_header=None):
    header, blobs, at = {}, [], 0
    for k, (dt, shape, data) in tensors.items():
        header[k] = {'dtype': dt, 'shape': shape, 'data_offsets': [at, at + len(data)]}
        blobs.append(bytes(data)); at += len(data)
    if meta: header['__metadata__'] = meta
    h = raw_header if raw_header is not None else json.dumps(header).encode()
    open(path, 'wb').write(struct.pack('<Q', len(h)) + h + b''.join(blobs))

def variant(name, config=None, tensors=None, files=('tokenizer.json', 'tokenizer_config.json', 'generation_config.json')):
    d = os.path.join(t, name); os.makedirs(d)
    for f in files:
        if os.path.exists(os.path.join(fix, f)): shutil.copy(os.path.join(fix, f), d)
    cfg = json.load(open(os.path.join(fix, 'config.json')))
    if callable(config): cfg = config(cfg)
    open(os.path.join(d, 'config.json'), 'w').write(cfg if isinstance(cfg, str) else json.dumps(cfg))
    st, meta = read_st(os.path.join(fix, 'model.safetensors'))
    if tensors: st = tensors(st) or st
    if st is not None: write_st(os.path.join(d, 'model.safetensors'), st, meta)
    return d

def fill(name, value, count=None):
    def f(st):
        dt, shape, data = st[name]
        n = len(data) // 4
        for i in range(n if count is None else count):
            data[4 * i:4 * i + 4] = struct.pack('<f', value)
    return f

variant('nan-norm', tensors=fill('model.norm.weight', float('nan')))
variant('inf-embed', tensors=fill('model.embed_tokens.weight', float('inf'), 3))
variant('big-f16', tensors=fill('model.layers.0.mlp.up_proj.weight', 1e6, 1))
def cfg_set(**kv):
    def f(c): c.update(kv); return c
    return f
variant('config-array', config=lambda c: '[1, 2, 3]')
variant('config-notjson', config=lambda c: '{"model_type": "qwen2",')
variant('hidden-2p40', config=cfg_set(hidden_size=2**40))
variant('hidden-negative', config=cfg_set(hidden_size=-3))
variant('heads-zero', config=cfg_set(num_attention_heads=0))
variant('layers-huge', config=cfg_set(num_hidden_layers=5000))
variant('shape-mismatch', config=cfg_set(intermediate_size=160))
def small_vocab(st):
    dt, shape, data = st['model.embed_tokens.weight']
    st['model.embed_tokens.weight'] = (dt, [256, shape[1]], data[:256 * shape[1] * 4])
variant('tokenizer-beyond-vocab', config=cfg_set(vocab_size=256), tensors=small_vocab)
d = variant('empty-safetensors', tensors=lambda st: None); open(os.path.join(d, 'model.safetensors'), 'wb').close()
d = variant('short-safetensors', tensors=lambda st: None); open(os.path.join(d, 'model.safetensors'), 'wb').write(b'\x05\x00')
d = variant('huge-header-len', tensors=lambda st: None)
open(os.path.join(d, 'model.safetensors'), 'wb').write(struct.pack('<Q', 2**63) + b'{}')
d = variant('header-notjson', tensors=lambda st: None)
open(os.path.join(d, 'model.safetensors'), 'wb').write(struct.pack('<Q', 5) + b'{"a":')
d = variant('offsets-overflow', tensors=lambda st: None)
st, meta = read_st(os.path.join(fix, 'model.safetensors'))
h = {k: {'dtype': v[0], 'shape': v[1], 'data_offsets': [0, 0]} for k, v in st.items()}
h['model.norm.weight']['data_offsets'] = [2**64 - 8, 2**64 - 1]
write_st(os.path.join(d, 'model.safetensors'), {}, raw_header=json.dumps(h).encode())
variant('no-tokenizer', files=())
d = variant('no-config'); os.remove(os.path.join(d, 'config.json'))
d = variant('no-weights'); os.remove(os.path.join(d, 'model.safetensors'))
# tokenizer.json variants
for name, text in [('tok-junk.json', 'not json at all'), ('tok-array.json', '[]'), ('tok-empty.json', ''),
                   ('tok-wordpiece.json', json.dumps({'model': {'type': 'WordPiece', 'vocab': {}}}))]:
    open(os.path.join(t, name), 'w').write(text)
# texts
open(os.path.join(t, 'big.txt'), 'w').write('Compute 7 * 3 + 5, then explain. ' * 6000)  # ~200 KB
open(os.path.join(t, 'long-prompt.txt'), 'w').write('seven times three plus five ' * 400)
# metrics files
os.makedirs(os.path.join(t, 'live'))
open(os.path.join(t, 'live', 'metrics.jsonl'), 'w').write(''.join(json.dumps({'step': i, 'loss': 1.0 / i}) + '\n' for i in range(1, 6)) + '{"step": 6, "lo')
os.makedirs(os.path.join(t, 'badline'))
open(os.path.join(t, 'badline', 'metrics.jsonl'), 'w').write('{"step": 1, "loss": 1}\n{"step": 2, "loss": \n{"step": 3, "loss": 1}\n')
os.makedirs(os.path.join(t, 'emptyrun')); open(os.path.join(t, 'emptyrun', 'metrics.jsonl'), 'w').close()
# data files
open(os.path.join(t, 'empty.jsonl'), 'w').close()
open(os.path.join(t, 'noanswer.jsonl'), 'w').write('{"prompt": "1+1", "answer": "2"}\n{"prompt": "2+2"}\n{"prompt": "3+3", "answer": null}\n')
open(os.path.join(t, 'notjson.jsonl'), 'w').write('{"prompt": "a", "response": "b"}\nnot json\n')
open(os.path.join(t, 'bad.toml'), 'w').write('this is = = not toml')
open(os.path.join(t, 'neg.toml'), 'w').write('model_type = "qwen2"\nvocab_size = 512\nhidden_size = -3\nintermediate_size = 64\nnum_hidden_layers = 1\nnum_attention_heads = 2\n')
open(os.path.join(t, 'unknown-key.toml'), 'w').write('num_generation = 4\n')
EOF

"$AHA" convert "$FIX" -o "$T/m.aha" --dtype f32 >/dev/null 2>&1 || { echo "cannot convert the fixture with $AHA"; exit 2; }
"$AHA" convert "$T/no-tokenizer" -o "$T/notok.aha" --dtype f32 >/dev/null 2>&1
M=$T/m.aha
python3 - "$M" "$T" <<'EOF'
import os, sys
m, t = sys.argv[1], sys.argv[2]
b = bytearray(open(m, 'rb').read())
open(os.path.join(t, 'truncated.aha'), 'wb').write(b[:len(b) // 2])
open(os.path.join(t, 'preamble.aha'), 'wb').write(b[:10])
open(os.path.join(t, 'empty.aha'), 'wb').close()
open(os.path.join(t, 'junk.aha'), 'wb').write(os.urandom(4096))
h = bytearray(b); h[40] ^= 0xFF; open(os.path.join(t, 'header-flip.aha'), 'wb').write(h)
f = bytearray(b); f[len(f) - 200] ^= 0x10; open(os.path.join(t, 'weight-flip.aha'), 'wb').write(f)
v = bytearray(b); v[4] = 9; open(os.path.join(t, 'version.aha'), 'wb').write(v)
EOF
LONG=$(head -c 60000 "$T/big.txt")
MANY=$(python3 -c "print(','.join(str(i % 400 + 7) for i in range(3000)))")
IDS300=$(python3 -c "print(','.join(str(i % 400 + 7) for i in range(300)))")
RUN=(--max-tokens 4 --temperature 0 --template raw)
TRAIN=(--max-steps 1 --batch-size 2 --seq-len 16)
GRPO=(--init "$FIX" --max-steps 1 --prompts-per-step 1 -G 2 --max-completion-length 4 --eval-steps 0 --template raw)

# --- closed pipes ------------------------------------------------------------
expect_quiet_pipe "pipe: logits --all"        "$AHA" logits "$M" --tokens 1,2,3 --all
expect_quiet_pipe "pipe: inspect"             "$AHA" inspect "$M"
expect_quiet_pipe "pipe: tokenize long text"  "$AHA" tokenize "$M" "$LONG"
expect_quiet_pipe "pipe: tokenize json"       "$AHA" tokenize "$FIX/tokenizer.json" "$LONG"
expect_quiet_pipe "pipe: detokenize"          "$AHA" detokenize "$M" "$MANY"
expect_quiet_pipe "pipe: bench"               "$AHA" bench "$M" --prompt 4 --tokens 4
expect_quiet_pipe "pipe: run"                 "$AHA" run "$M" --prompt hi --max-tokens 40 --temperature 0 --template raw
expect_quiet_pipe "pipe: plot"                "$AHA" plot "$T/live" -o "$T/plots-pipe"
expect_quiet_pipe "pipe: --help"              "$AHA" --help

# --- sizes a user types ------------------------------------------------------
expect_error "run --context 100000000"     "100000000;256"   "$AHA" run "$M" --prompt hi --context 100000000 "${RUN[@]}"
expect_error "run --context 4294967296"    "4294967296;256"  "$AHA" run "$M" --prompt hi --context 4294967296 "${RUN[@]}"
expect_error "run --context 2^64-1"        "context"         "$AHA" run "$M" --prompt hi --context 18446744073709551615 "${RUN[@]}"
expect_error "bench --prompt 100000000"    "100000000;256"   "$AHA" bench "$M" --prompt 100000000 --tokens 1
expect_error "bench --tokens 100000000"    "100000000;256"   "$AHA" bench "$M" --prompt 4 --tokens 100000000
expect_error "bench --prompt 0"            "prompt"          "$AHA" bench "$M" --prompt 0 --tokens 4
expect_error "logits 300 tokens > 256"     "300;256"         "$AHA" logits "$M" --tokens "$IDS300"
expect_error "run --threads 0"             "threads"         "$AHA" run "$M" --prompt hi --threads 0 "${RUN[@]}"
expect_error "run --threads 100000"        "threads;100000"  "$AHA" run "$M" --prompt hi --threads 100000 "${RUN[@]}"
expect_error "logits --threads 0"          "threads"         "$AHA" logits "$M" --tokens 1,2 --threads 0
expect_error "bench --threads 0"           "thread"          "$AHA" bench "$M" --threads 0 --prompt 4 --tokens 4
expect_error "generate --batch-size 0"     "batch"           "$AHA" generate --init "$FIX" --prompts arith --examples 2 --out "$T/s.jsonl" --batch-size 0 --max-new-tokens 4
expect_error "generate -n 0"               "samples|-n|n must|num"  "$AHA" generate --init "$FIX" --prompts arith --examples 2 --out "$T/s.jsonl" -n 0 --max-new-tokens 4
expect_error "generate --max-new-tokens 10^8" "256"          "$AHA" generate --init "$FIX" --prompts arith --examples 2 --out "$T/s.jsonl" --max-new-tokens 100000000
expect_error "pretrain --batch-size 0"     "batch"           "$AHA" pretrain --task arith --examples 50 --init "$FIX" --out "$T/p0" --max-steps 1 --batch-size 0 --seq-len 16
expect_error "pretrain --seq-len 0"        "seq"             "$AHA" pretrain --task arith --examples 50 --init "$FIX" --out "$T/p1" --max-steps 1 --batch-size 2 --seq-len 0
expect_error "pretrain --seq-len 10^8"     "256|seq"         "$AHA" pretrain --task arith --examples 50 --init "$FIX" --out "$T/p2" --max-steps 1 --batch-size 2 --seq-len 100000000
expect_error "grpo -G 0"                   "num_generations" "$AHA" grpo "${GRPO[@]}" --task arith --out "$T/g0" -G 0

# --- context and prompt length ----------------------------------------------
expect_error "run --context 0"             "context;0"       "$AHA" run "$M" --prompt "hello there" --context 0 "${RUN[@]}"
expect_error "run --context 1"             "context;1"       "$AHA" run "$M" --prompt "hello there" --context 1 "${RUN[@]}"
expect_error "run --context 2"             "context;2"       "$AHA" run "$M" --prompt "hello there" --context 2 "${RUN[@]}"
expect_error "run --context 300 (> 256)"   "300;256"         "$AHA" run "$M" --prompt hi --context 300 "${RUN[@]}"
expect_error "run prompt > 256 positions"  "256"             "$AHA" run "$M" --prompt "$(cat "$T/long-prompt.txt")" "${RUN[@]}"

# --- non-finite weights ------------------------------------------------------
expect_error "convert NaN norm"            "model.norm.weight;NaN"        "$AHA" convert "$T/nan-norm" -o "$T/x.aha" --dtype f32
expect_error "convert inf embed (q8_0)"    "model.embed_tokens.weight"    "$AHA" convert "$T/inf-embed" -o "$T/x.aha" --dtype q8_0
expect_error "convert 1e6 into f16"        "up_proj;f16"                  "$AHA" convert "$T/big-f16" -o "$T/x.aha" --dtype f16
expect_error "export NaN norm"             "model.norm.weight"            "$AHA" export "$T/nan-norm" -o "$T/x.aha" --dtype q8_0
expect_success "convert NaN --allow-non-finite" "[ -s '$T/allowed.aha' ]" "$AHA" convert "$T/nan-norm" -o "$T/allowed.aha" --dtype f32 --allow-non-finite

# --- corrupted weights -------------------------------------------------------
expect_error "run on a flipped weight"     "checksum"        "$AHA" run "$T/weight-flip.aha" --prompt hi "${RUN[@]}"
expect_error "logits on a flipped weight"  "checksum"        "$AHA" logits "$T/weight-flip.aha" --tokens 1,2
expect_error "bench on a flipped weight"   "checksum"        "$AHA" bench "$T/weight-flip.aha" --prompt 4 --tokens 4
expect_error "inspect --verify flipped"    "checksum"        "$AHA" inspect "$T/weight-flip.aha" --verify
expect_success "run --no-verify flipped"   "true"            "$AHA" run "$T/weight-flip.aha" --prompt hi --no-verify "${RUN[@]}"
expect_error "run on a flipped header"     "checksum|header" "$AHA" run "$T/header-flip.aha" --prompt hi "${RUN[@]}"
expect_error "run on truncated .aha"       "truncated"       "$AHA" run "$T/truncated.aha" --prompt hi "${RUN[@]}"
expect_error "run on 10-byte .aha"         "truncated|preamble" "$AHA" run "$T/preamble.aha" --prompt hi "${RUN[@]}"
expect_error "run on empty .aha"           "empty.aha"       "$AHA" run "$T/empty.aha" --prompt hi "${RUN[@]}"
expect_error "run on random bytes"         "magic"           "$AHA" run "$T/junk.aha" --prompt hi "${RUN[@]}"
expect_error "run on version 9"            "version"         "$AHA" run "$T/version.aha" --prompt hi "${RUN[@]}"
expect_error "run without tokenizer"       "tokenizer"       "$AHA" run "$T/notok.aha" --prompt hi "${RUN[@]}"

# --- writes that must not replace what they should not ------------------------
# A reader for the FIFO; if the FIFO was replaced it never gets a writer: end it.
fifo_reader() { ( exec cat "$T/fifo" > "$1" ) & READER=$!; }
end_reader() { sleep 0.2; kill "$READER" 2>/dev/null; wait "$READER" 2>/dev/null; }
mkfifo "$T/fifo"
fifo_reader "$T/fifo.out"
expect_success "convert -o FIFO"           "[ -p '$T/fifo' ] && head -c 4 '$T/fifo.out' | grep -q AHA" \
    "$AHA" convert "$FIX" -o "$T/fifo" --dtype q8_0
end_reader
echo old > "$T/real.aha"; ln -s real.aha "$T/link.aha"
expect_success "convert -o symlink"        "[ -L '$T/link.aha' ] && head -c 4 '$T/real.aha' | grep -q AHA" \
    "$AHA" convert "$FIX" -o "$T/link.aha" --dtype q8_0
mkdir -p "$T/adir"
expect_error "convert -o a directory"      "adir;directory"  "$AHA" convert "$FIX" -o "$T/adir" --dtype q8_0
expect_error "convert -o missing folder"   "nowhere"         "$AHA" convert "$FIX" -o "$T/nowhere/x.aha" --dtype q8_0
rm -f "$T/fifo"; mkfifo "$T/fifo"; ln -s "$T/fifo" "$T/fifo-link"
fifo_reader "$T/fifo2.out"
expect_success "generate --out symlink->FIFO" "[ -p '$T/fifo' ] && [ -L '$T/fifo-link' ] && grep -q token_ids '$T/fifo2.out'" \
    "$AHA" generate --init "$FIX" --prompts arith --examples 1 --out "$T/fifo-link" --max-new-tokens 2
end_reader

# --- messages ------------------------------------------------------------------
expect_error "inspect a missing file"      "nope.aha"        "$AHA" inspect "$T/nope.aha"
[ "$(grep -o 'os error' <<<"$ERR" | wc -l)" -le 1 ] || { ROWS[-1]="$(printf '%-8s %-34s %s' unclear "inspect a missing file" "OS error text twice: $ERR")"; N_OK=$((N_OK - 1)); N_UNCLEAR+=1; }
expect_error "convert empty safetensors"   "model.safetensors;empty"   "$AHA" convert "$T/empty-safetensors" -o "$T/x.aha"
expect_error "convert 2-byte safetensors"  "model.safetensors;short|8-byte" "$AHA" convert "$T/short-safetensors" -o "$T/x.aha"
expect_error "convert huge header length"  "header length"   "$AHA" convert "$T/huge-header-len" -o "$T/x.aha"
expect_error "convert header not JSON"     "JSON"            "$AHA" convert "$T/header-notjson" -o "$T/x.aha"
expect_error "convert offsets overflow u64" "model.norm.weight" "$AHA" convert "$T/offsets-overflow" -o "$T/x.aha"
expect_error "convert config.json [1,2,3]" "config.json;object|array" "$AHA" convert "$T/config-array" -o "$T/x.aha"
expect_error "convert config not JSON"     "config.json;JSON"    "$AHA" convert "$T/config-notjson" -o "$T/x.aha"
expect_error "convert hidden_size 2^40"    "hidden_size;large"   "$AHA" convert "$T/hidden-2p40" -o "$T/x.aha"
expect_error "convert hidden_size -3"      "hidden_size"         "$AHA" convert "$T/hidden-negative" -o "$T/x.aha"
expect_error "convert 0 heads"             "num_attention_heads" "$AHA" convert "$T/heads-zero" -o "$T/x.aha"
expect_error "convert 5000 layers"         "layers"              "$AHA" convert "$T/layers-huge" -o "$T/x.aha"
expect_error "convert shape mismatch"      "mlp"                 "$AHA" convert "$T/shape-mismatch" -o "$T/x.aha"
expect_error "convert no config.json"      "config.json"         "$AHA" convert "$T/no-config" -o "$T/x.aha"
expect_error "convert no weights"          "safetensors"         "$AHA" convert "$T/no-weights" -o "$T/x.aha"
expect_error "convert tokenizer > vocab"   "tokenizer.json;vocab" "$AHA" convert "$T/tokenizer-beyond-vocab" -o "$T/x.aha"
expect_error "convert --dtype q3"          "q3"                  "$AHA" convert "$FIX" -o "$T/x.aha" --dtype q3
expect_error "tokenize junk tokenizer"     "tok-junk.json"       "$AHA" tokenize "$T/tok-junk.json" hi
expect_error "tokenize [] tokenizer"       "tok-array.json"      "$AHA" tokenize "$T/tok-array.json" hi
expect_error "tokenize empty tokenizer"    "tok-empty.json"      "$AHA" tokenize "$T/tok-empty.json" hi
expect_error "tokenize WordPiece"          "WordPiece|model"     "$AHA" tokenize "$T/tok-wordpiece.json" hi
expect_success "tokenize --file 200 KB"    "[ \"\$(tr -cd , < '$T/.out' | wc -c)\" -gt 1000 ]" "$AHA" tokenize "$M" --file "$T/big.txt"
expect_success "tokenize - (stdin)"        "grep -q '\\[' '$T/.out'" bash -c "'$AHA' tokenize '$M' - < '$T/big.txt'"
expect_error "logits --tokens 1,,2"        "1,,2|empty"          "$AHA" logits "$M" --tokens 1,,2
expect_error "logits --tokens 1,2,"        "empty|1,2,"          "$AHA" logits "$M" --tokens 1,2,
expect_error "logits --tokens 1,x"         "\`x\`"               "$AHA" logits "$M" --tokens 1,x
expect_error "logits --tokens ''"          "token"               "$AHA" logits "$M" --tokens ""
expect_error "logits token 99999"          "99999"               "$AHA" logits "$M" --tokens 1,99999
expect_error "detokenize 999999"           "999999"              "$AHA" detokenize "$M" 999999
expect_error "run --temperature nan"       "temperature"         "$AHA" run "$M" --prompt hi --temperature nan --max-tokens 2
expect_error "run --top-p 2"               "top_p"               "$AHA" run "$M" --prompt hi --top-p 2 --max-tokens 2
expect_error "run --template nope"         "nope"                "$AHA" run "$M" --prompt hi --template nope
expect_error "inspect --target nope"       "nope"                "$AHA" inspect "$M" --target nope
expect_success "plot a half-written line"  "[ -s '$T/live/plots/loss.png' ] || ls '$T/live/plots' | grep -q png" "$AHA" plot "$T/live"
expect_error "plot a bad middle line"      "metrics.jsonl:2"     "$AHA" plot "$T/badline"
expect_error "plot an empty file"          "metrics.jsonl"       "$AHA" plot "$T/emptyrun"
expect_error "plot a missing run"          "metrics.jsonl"       "$AHA" plot "$T/nowhere"
expect_error "plot --smoothing 2"          "smoothing"           "$AHA" plot "$T/live" --smoothing 2
expect_error "sft on an empty file"        "empty.jsonl"         "$AHA" sft --init "$FIX" --data "$T/empty.jsonl" --out "$T/sft0" "${TRAIN[@]}"
expect_error "sft on a non-JSON line"      "notjson.jsonl:2"     "$AHA" sft --init "$FIX" --data "$T/notjson.jsonl" --out "$T/sft1" "${TRAIN[@]}"
expect_error "sft on a missing file"       "missing.jsonl"       "$AHA" sft --init "$FIX" --data "$T/missing.jsonl" --out "$T/sft2" "${TRAIN[@]}"
expect_error "grpo rows without answer"    "noanswer.jsonl:2;answer" "$AHA" grpo "${GRPO[@]}" --task "$T/noanswer.jsonl" --out "$T/g1"
expect_error "grpo unknown TOML key"       "num_generation"      "$AHA" grpo "${GRPO[@]}" --task arith --out "$T/g2" --train-config "$T/unknown-key.toml"
expect_error "pretrain config not TOML"    "bad.toml"            "$AHA" pretrain --task arith --examples 50 --config "$T/bad.toml" --out "$T/p3" "${TRAIN[@]}"
expect_error "pretrain hidden_size -3"     "hidden_size"         "$AHA" pretrain --task arith --examples 50 --config "$T/neg.toml" --out "$T/p4" "${TRAIN[@]}"
expect_error "pretrain missing corpus"     "missing.txt"         "$AHA" pretrain --corpus "$T/missing.txt" --init "$FIX" --out "$T/p5" "${TRAIN[@]}"
expect_error "export a non-checkpoint"     "config.json"         "$AHA" export "$T" -o "$T/x.aha"

printf '%s\n' "${ROWS[@]}"
echo
echo "$(( N_CRASH + N_SILENT + N_UNCLEAR + N_OK )) cases: $N_CRASH crash, $N_SILENT silent wrong, $N_UNCLEAR unclear, $N_OK clear/ok"
