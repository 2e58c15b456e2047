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
# The same images as a CSV: 784 pixel columns and the label last, which --target names.
"$python" - "$work" <<'EOF' || fail "writing the CSV"
import sys, numpy as np
work = sys.argv[1]
pixels = np.frombuffer(open(f"{work}/images-idx3-ubyte", "rb").read()[16:], np.uint8).reshape(-1, 784)
labels = np.frombuffer(open(f"{work}/labels-idx1-ubyte", "rb").read()[8:], np.uint8)
with open(f"{work}/images.csv", "w") as f:
    f.write(",".join(f"p{i}" for i in range(784)) + ",label\n")
    for row, label in zip(pixels, labels):
        f.write(",".join(map(str, row)) + f",{label}\n")
EOF
csv_eval=$("$lathe" eval "$work/model.onnx" "$work/images.csv" --target label)
[ "$csv_eval" = "$native_eval" ] || fail "eval --target of a CSV: '$csv_eval' vs '$native_eval'"
expect_error "eval of a CSV without --target" \
  "images.csv: this model was not trained on CSV data, so which column holds the labels is not known: name it with --target COLUMN" \
  eval "$work/model.onnx" "$work/images.csv" || failures=$((failures + 1))
echo "ok   eval of a CSV with --target = the native bundle's eval of the images"
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

# ---- A colleague's models, written the way torch.onnx writes them (opset 14) ----
# input.1 [batch, 784]; nn.Linear as MatMul then Add(bias, x W); a Softmax output "probs". And
# the same with an exact (Erf) GELU, which stays a graph.
"$python" - "$work" <<'PY' || fail "writing the PyTorch-style models"
import sys, numpy as np, onnx
from onnx import helper, numpy_helper, TensorProto
work, rng = sys.argv[1], np.random.default_rng(0)
def init(name, *shape):
    return numpy_helper.from_array((rng.standard_normal(shape) * 0.05).astype(np.float32), name)
x = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["batch", 784])
probs = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 10])
weights = [init("fc1.w", 784, 64), init("fc1.bias", 64), init("fc2.w", 64, 10), init("fc2.bias", 10)]
node = helper.make_node
linear1 = [node("MatMul", ["input.1", "fc1.w"], ["/fc1/MatMul_output_0"], name="/fc1/MatMul"),
           node("Add", ["fc1.bias", "/fc1/MatMul_output_0"], ["/fc1/Add_output_0"], name="/fc1/Add")]
relu = [node("Relu", ["/fc1/Add_output_0"], ["/act"], name="/relu/Relu")]
gelu = [node("Div", ["/fc1/Add_output_0", "sqrt2"], ["/g1"]), node("Erf", ["/g1"], ["/g2"]),
        node("Add", ["/g2", "one"], ["/g3"]), node("Mul", ["/fc1/Add_output_0", "/g3"], ["/g4"]),
        node("Mul", ["/g4", "half"], ["/act"])]
head = [node("MatMul", ["/act", "fc2.w"], ["/fc2/MatMul_output_0"], name="/fc2/MatMul"),
        node("Add", ["fc2.bias", "/fc2/MatMul_output_0"], ["logits"], name="/fc2/Add"),
        node("Softmax", ["logits"], ["probs"], name="/Softmax", axis=1)]
consts = [numpy_helper.from_array(np.array(v, np.float32), n)
          for n, v in (("sqrt2", np.sqrt(2)), ("one", 1), ("half", 0.5))]
for name, body, extra in (("torch_mlp", relu, []), ("torch_gelu", gelu, consts)):
    graph = helper.make_graph(linear1 + body + head, "torch_jit", [x], [probs], weights + extra)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]),
              f"{work}/{name}.onnx")
np.save(f"{work}/x784.npy", np.load(f"{work}/x.npy").reshape(5, 784))
PY
"$lathe" import "$work/torch_mlp.onnx" "$work/torch_mlp.safetensors" >"$work/import.log" &&
  grep -q "output 'logits', 10 classes" "$work/import.log" &&
  grep -q "as lathe layers: linear 784->64, relu, linear 64->10" "$work/import.log" ||
  fail "import of the PyTorch-style MLP: $(cat "$work/import.log")"
"$lathe" import "$work/torch_gelu.onnx" "$work/torch_gelu.safetensors" >"$work/import.log" &&
  grep -q "as an ONNX graph (onnx_graph): no lathe layer form, '/fc1/Add_output_0' feeds two nodes" \
    "$work/import.log" || fail "import of the GELU model: $(cat "$work/import.log")"
for model in "$work/torch_mlp.onnx" "$work/torch_gelu.onnx"; do
  # 28x28 IDX images for a graph of 784 inputs: laid out as the graph declares them.
  "$lathe" eval "$model" "$work/images-idx3-ubyte" "$work/labels-idx1-ubyte" >"$work/eval.log" ||
    fail "eval of $model on 28x28 images: $(cat "$work/eval.log")"
done
"$lathe" run "$work/torch_gelu.onnx" -i "$work/x784.npy" -o "$work/gelu_out" >/dev/null ||
  fail "run of the GELU graph"
"$python" - "$work" <<'PY' || fail "lathe run of the GELU graph differs from numpy"
import sys, numpy as np, onnx
from math import erf
from onnx import numpy_helper
work = sys.argv[1]
w = {t.name: numpy_helper.to_array(t).astype(np.float64)
     for t in onnx.load(f"{work}/torch_gelu.onnx").graph.initializer}
h = np.load(f"{work}/x784.npy").astype(np.float64) @ w["fc1.w"] + w["fc1.bias"]
h = 0.5 * h * (1 + np.vectorize(erf)(h / np.sqrt(2)))
z = h @ w["fc2.w"] + w["fc2.bias"]
p = np.exp(z - z.max(1, keepdims=True))
p /= p.sum(1, keepdims=True)
t = onnx.TensorProto()
t.ParseFromString(open(f"{work}/gelu_out/output_0.pb", "rb").read())
assert np.abs(numpy_helper.to_array(t) - p).max() < 1e-5, np.abs(numpy_helper.to_array(t) - p).max()
PY
# Fine-tuning the PyTorch-style file with no output named: the logits train, not the Softmax.
sed -e 's|file = "model.onnx"|file = "torch_mlp.onnx"|' -e '/^output = "logits"/d' \
  -e "s|^output_dir = .*|output_dir = \"$work/torch_tuned\"|" "$work/finetune.toml" >"$work/torch.toml"
(cd / && "$lathe" train "$work/torch.toml" >"$work/torch_tune.log") ||
  fail "fine-tune of the PyTorch-style MLP: $(cat "$work/torch_tune.log")"
grep -q 'output "logits"' "$work/torch_tune.log" ||
  fail "fine-tuning did not take the logits: $(grep Model "$work/torch_tune.log")"
"$lathe" export "$work/torch_tuned/model.safetensors" "$work/torch_tuned.onnx" >/dev/null ||
  fail "export of the fine-tuned opset-14 graph"
echo "ok   PyTorch-style models: lowered (bias-first Add), GELU graph = numpy, eval on 28x28," \
  "fine-tuned on the logits, exported again"

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
