#!/usr/bin/env bash
# ONNX import as a user runs it (docs/onnx_import.md), on a Fashion bundle trained here in
# seconds and exported with `lathe export`: `lathe run` on .npy and .pb inputs, `lathe import`,
# predict / eval / inspect / serve of the bundle and of the .onnx file directly (each must give
# what the native bundle gives), fine-tuning from a config with --resume, and the errors.
# Usage: cli_onnx_import.sh LATHE_BINARY SOURCE_DIR
set -u
lathe=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")  # absolute: some runs cd elsewhere
source_dir="$2"
work=$(mktemp -d)
. "$source_dir/scripts/lib/serve.sh"
trap 'kill_lathe_serve; rm -rf "$work"' EXIT
failures=0
python=/usr/bin/python3  # Debian's, with numpy and python3-onnx
fashion=/usr/share/datasets/fashion-mnist

fail() {
  echo "FAIL $*"
  failures=$((failures + 1))
}
. "$source_dir/tests/lib/expect_error.sh"
. "$source_dir/tests/lib/fashion_subset.sh"
fashion_subset 200 "$work/images-idx3-ubyte" "$work/labels-idx1-ubyte"

"$lathe" train "$source_dir/examples/fashion_mlp/config.toml" --set trainer.epochs=1 \
  --set trainer.log_every=0 --set "trainer.output_dir=$work/native" \
  --set "data.train_images=$work/images-idx3-ubyte" --set "data.train_labels=$work/labels-idx1-ubyte" \
  --set "data.test_images=$work/images-idx3-ubyte" --set "data.test_labels=$work/labels-idx1-ubyte" \
  >"$work/train.log" || { echo "FAIL: could not train the bundle"; cat "$work/train.log"; exit 1; }
native="$work/native/model.safetensors"
"$lathe" export "$native" "$work/model.onnx" >/dev/null || { echo "FAIL: export"; exit 1; }

# ---- lathe run: .npy and .pb inputs, output_N.pb in the graph's order ----
"$python" - "$work" <<'EOF' || fail "writing the inputs"
import gzip, sys, numpy as np
from onnx import numpy_helper
work = sys.argv[1]
pixels = np.frombuffer(open(f"{work}/images-idx3-ubyte", "rb").read()[16:], np.uint8)
x = pixels[: 5 * 784].reshape(5, 28, 28).astype(np.float32)
np.save(f"{work}/x.npy", x)
open(f"{work}/x.pb", "wb").write(numpy_helper.from_array(x, "input").SerializeToString())
EOF
"$lathe" run "$work/model.onnx" --input "input=$work/x.npy" --output-dir "$work/run_npy" \
  >"$work/run.log" || fail "run on .npy: $(cat "$work/run.log")"
grep -q "output_0.pb: probabilities float32 \[5,10\]" "$work/run.log" &&
  grep -q "output_1.pb: logits float32 \[5,10\]" "$work/run.log" ||
  fail "run's output lines: $(cat "$work/run.log")"
"$lathe" run "$work/model.onnx" -i "$work/x.pb" -o "$work/run_pb" >/dev/null || fail "run on .pb"
"$lathe" predict "$native" "$work/images-idx3-ubyte" >"$work/native.csv" || fail "native predict"
"$python" - "$work" <<'EOF' && echo "ok   lathe run (.npy, .pb) = lathe predict" || fail "lathe run's outputs differ from lathe predict's"
import csv, sys, numpy as np, onnx
from onnx import numpy_helper
work = sys.argv[1]
rows = list(csv.reader(open(f"{work}/native.csv")))[1:6]
expected = np.array([[float(v) for v in row[3:]] for row in rows])
for folder in ("run_npy", "run_pb"):
    t = onnx.TensorProto()
    t.ParseFromString(open(f"{work}/{folder}/output_0.pb", "rb").read())
    assert t.name == "probabilities", t.name
    got = numpy_helper.to_array(t)
    assert np.abs(got - expected).max() < 1e-6, (folder, np.abs(got - expected).max())
EOF

# ---- lathe import, and .onnx wherever a bundle goes ----
"$lathe" import "$work/model.onnx" "$work/imported.safetensors" >"$work/import.log" ||
  fail "import: $(cat "$work/import.log")"
grep -q "classification from .*model.onnx (109386 parameters), input \[N,28,28\], output 'logits', 10 classes" \
  "$work/import.log" &&
  grep -q "as lathe layers: flatten, linear 784->128, relu, linear 128->64, relu, linear 64->10" \
    "$work/import.log" || fail "import's lines: $(cat "$work/import.log")"
"$lathe" import "$work/model.onnx" "$work/graph.safetensors" --keep-graph >"$work/import.log" ||
  fail "import --keep-graph: $(cat "$work/import.log")"
grep -q "(109389 parameters).*" "$work/import.log" && grep -q "as an ONNX graph (onnx_graph)" "$work/import.log" ||
  fail "import --keep-graph's lines: $(cat "$work/import.log")"
for model in "$work/imported.safetensors" "$work/graph.safetensors" "$work/model.onnx"; do
  "$lathe" predict "$model" "$work/images-idx3-ubyte" >"$work/other.csv" || fail "predict $model"
  "$python" - "$work/native.csv" "$work/other.csv" <<'EOF' || fail "predict $model differs from the native bundle"
import csv, sys
a, b = (list(csv.reader(open(p)))[1:] for p in sys.argv[1:])
assert len(a) == len(b) == 200
for x, y in zip(a, b):
    assert x[1:3] == y[1:3], (x[:3], y[:3])
    assert max(abs(float(p) - float(q)) for p, q in zip(x[3:], y[3:])) < 1e-6
EOF
  native_eval=$("$lathe" eval "$native" "$work/images-idx3-ubyte" "$work/labels-idx1-ubyte")
  other_eval=$("$lathe" eval "$model" "$work/images-idx3-ubyte" "$work/labels-idx1-ubyte")
  [ "$native_eval" = "$other_eval" ] || fail "eval $model: '$other_eval' vs '$native_eval'"
done
echo "ok   predict and eval of the imported bundles (layers, graph) and of the .onnx file = the native bundle's"
"$lathe" inspect "$work/model.onnx" >"$work/inspect.txt" || fail "inspect .onnx"
grep -q "^Format: *onnx (imported)" "$work/inspect.txt" &&
  grep -q "^Classes (10): *T-shirt/top, Trouser" "$work/inspect.txt" &&
  grep -q "^Architecture: *sequential, 6 layers" "$work/inspect.txt" ||
  fail "inspect .onnx: $(cat "$work/inspect.txt")"

start_lathe_serve "$work" "$lathe" "$work/model.onnx" --no-watch || fail "serve .onnx did not start"
if [ -n "${server_url:-}" ]; then
  body=$("$python" -c "
import json, numpy as np
x = np.load('$work/x.npy')[:1]
print(json.dumps({'inputs': [{'name': 'input', 'shape': [1, 28, 28], 'datatype': 'FP32', 'data': x.ravel().tolist()}]}))")
  answer=$(curl -s "$server_url/v2/models/model/infer" -H 'Content-Type: application/json' -d "$body")
  first_class=$(sed -n 2p "$work/native.csv" | cut -d, -f2)
  case "$answer" in *'"class_index","datatype":"INT64","shape":[1],"data":['"$first_class"']'*)
    echo "ok   serve model.onnx: class $first_class, as the native bundle" ;;
    *) fail "serve .onnx answered: $answer (expected class $first_class)" ;; esac
  stop_lathe_serve >/dev/null
fi

# ---- Fine-tuning: the imported graph's weights trained by the usual trainer, then resumed ----
cat >"$work/finetune.toml" <<EOF
[data]
format = "idx"
train_images = "images-idx3-ubyte"
train_labels = "labels-idx1-ubyte"
test_images = "images-idx3-ubyte"
test_labels = "labels-idx1-ubyte"
validation_fraction = 0.2

[model]
type = "onnx_graph"
file = "model.onnx"
output = "logits"

[loss]
type = "cross_entropy"

[optimizer]
type = "adam"
lr = 0.001

[trainer]
epochs = 1
batch_size = 32
log_every = 0
output_dir = "$work/tuned"
EOF
(cd / && "$lathe" train "$work/finetune.toml" >"$work/tune.log") || fail "fine-tune: $(cat "$work/tune.log")"
grep -q "Model: onnx_graph (graph <[0-9]* characters>, input \"input\", output \"logits\"), 109389 parameters" \
  "$work/tune.log" || fail "fine-tune's model line: $(grep Model "$work/tune.log")"
(cd / && "$lathe" train "$work/finetune.toml" --set trainer.epochs=2 --resume >"$work/resume.log") ||
  fail "fine-tune --resume: $(cat "$work/resume.log")"
grep -q "Epoch 1: Validation" "$work/resume.log" || fail "resume did not run epoch 1: $(cat "$work/resume.log")"
"$python" - "$native" "$work/tuned/model.safetensors" <<'EOF' && echo "ok   fine-tuned (2 epochs, resumed) and saved" || fail "fine-tuning did not change the weights"
import json, struct, sys
def tensor(path, name):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    begin, end = header[name]["data_offsets"]
    return data[8 + n + begin : 8 + n + end]
# The native bundle stores fc weights as "1.weight"; the imported graph's initializer keeps the name.
assert tensor(sys.argv[1], "1.weight") != tensor(sys.argv[2], "1.weight")
EOF
"$lathe" eval "$work/tuned/model.safetensors" "$work/images-idx3-ubyte" "$work/labels-idx1-ubyte" \
  >/dev/null || fail "eval of the fine-tuned bundle"

# ---- The fine-tuned model exported again: valid ONNX, the same predictions ----
"$lathe" export "$work/tuned/model.safetensors" "$work/tuned.onnx" >/dev/null || fail "export of the fine-tuned bundle"
"$python" -c "import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)" \
  "$work/tuned.onnx" || fail "onnx.checker on the re-exported model"
"$lathe" predict "$work/tuned/model.safetensors" "$work/images-idx3-ubyte" >"$work/tuned.csv"
"$lathe" predict "$work/tuned.onnx" "$work/images-idx3-ubyte" >"$work/tuned_onnx.csv"
cut -d, -f2,3 "$work/tuned.csv" | tail -n +2 >"$work/a"
cut -d, -f2,3 "$work/tuned_onnx.csv" | tail -n +2 >"$work/b"
cmp -s "$work/a" "$work/b" && echo "ok   the fine-tuned model re-exported: onnx.checker, same classes" ||
  fail "the re-exported fine-tuned model predicts other classes"

# ---- Errors: one line naming what is wrong ----
printf 'not a model' >"$work/junk.onnx"
expect_error "junk model" "junk.onnx: not a valid ONNX model" run "$work/junk.onnx" -o "$work/o" || failures=$((failures + 1))
expect_error "junk predict" "junk.onnx: not a valid ONNX model" predict "$work/junk.onnx" "$work/images-idx3-ubyte" || failures=$((failures + 1))
expect_error "missing input" "input 'input float32 \[N,28,28\]' is not given: add --input input=FILE.pb" \
  run "$work/model.onnx" -o "$work/o" || failures=$((failures + 1))
expect_error "unknown input" "the model has no input 'pixels'; its inputs are: input float32 \[N,28,28\]" \
  run "$work/model.onnx" -i "pixels=$work/x.npy" -o "$work/o" || failures=$((failures + 1))
"$python" - "$work" <<'EOF' || fail "writing the bad models"
import sys, onnx
from onnx import helper, TensorProto
work = sys.argv[1]
x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
fancy = helper.make_graph([helper.make_node("NonMaxSuppression", ["x"], ["y"], name="nms")], "g", [x], [y])
onnx.save(helper.make_model(fancy, opset_imports=[helper.make_opsetid("", 13)]), f"{work}/nms.onnx")
strings = helper.make_tensor_value_info("s", TensorProto.STRING, ["N"])
ident = helper.make_graph([helper.make_node("Identity", ["s"], ["t"])], "g", [strings],
                          [helper.make_tensor_value_info("t", TensorProto.STRING, ["N"])])
onnx.save(helper.make_model(ident, opset_imports=[helper.make_opsetid("", 13)]), f"{work}/strings.onnx")
EOF
expect_error "unsupported op" "node 'nms' \(NonMaxSuppression\): operator NonMaxSuppression is not supported" \
  import "$work/nms.onnx" "$work/nms.safetensors" || failures=$((failures + 1))
[ -e "$work/nms.safetensors" ] && fail "a refused import wrote its bundle"
expect_error "string input" "graph input 's': element type string is not supported" \
  run "$work/strings.onnx" -o "$work/o" || failures=$((failures + 1))
expect_error "import --classes" "3 class names given, the model has 10 outputs" \
  import "$work/model.onnx" "$work/x.safetensors" --classes a,b,c || failures=$((failures + 1))

if [ "$failures" -gt 0 ]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "all ONNX import CLI checks passed"
