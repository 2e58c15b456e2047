#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/corpus/<target>/: small valid and near-valid inputs.

Run from the repository root: python3 fuzz/make_seeds.py. The output is committed; rerun after
changing this script. Uses only the standard library (the format writers are a few lines each).
tests/test_safetensors_hostile.cpp loads the bundle seed, so it stays a valid lathe bundle.
"""
import gzip
import json
import os
import shutil
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(target, name, data):
    folder = os.path.join(ROOT, target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def compact(value):
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


# ---- safetensors ----

FORMATS = {"F32": "f", "F64": "d", "I64": "q", "I32": "i", "I16": "h", "I8": "b", "U8": "B",
           "U16": "H", "U32": "I", "U64": "Q", "BOOL": "B", "F16": "e"}


def safetensors(tensors, metadata=None, pad=True, metadata_first=False):
    """tensors: list of (name, dtype, shape, values); values packed little-endian."""
    header, data = {}, b""
    for name, dtype, shape, values in tensors:
        if dtype == "BF16":
            raw = b"".join(struct.pack("<f", v)[2:] for v in values)
        else:
            raw = struct.pack("<%d%s" % (len(values), FORMATS[dtype]), *values)
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata is not None:
        if metadata_first:
            header = {"__metadata__": metadata, **header}
        else:
            header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False,
                      sort_keys=not metadata_first).encode()
    if pad:
        text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


def mlp_bundle():
    """A 3-4-2 MLP with a ReLU, as lathe's save_bundle writes it."""
    w0 = [round(0.1 * (i - 6), 2) for i in range(12)]
    b0 = [0.01, -0.02, 0.03, 0.0]
    w2 = [round(0.05 * (i - 4), 2) for i in range(8)]
    b2 = [0.5, -0.5]
    architecture = {"type": "sequential", "layers": [
        {"type": "linear", "in": 3, "out": 4, "bias": True},
        {"type": "relu"},
        {"type": "linear", "in": 4, "out": 2, "bias": True}]}
    metadata = {
        "format": "lathe.bundle/1",
        "lathe.version": "0.1.0",
        "lathe.architecture": compact(architecture),
        "lathe.preprocessing": compact({"scale": 1.0, "mean": [0.0], "std": [1.0]}),
        "lathe.task": compact({"task": "classification", "classes": ["no", "yes"],
                               "input_shape": [3]}),
        "lathe.metrics": compact({"test": {"accuracy": 0.9}}),
    }
    return safetensors([("0.bias", "F32", [4], b0), ("0.weight", "F32", [4, 3], w0),
                        ("2.bias", "F32", [2], b2), ("2.weight", "F32", [2, 4], w2)], metadata)


def gpt_bundle(tokenizer):
    """A one-layer GPT (2 heads, 4 wide, context 4) as save_language_model writes it."""
    c, vocab, block = 4, 3 if tokenizer["kind"] == "char" else 257, 4
    shapes = [("wte.weight", [vocab, c]), ("wpe.weight", [block, c])]
    for name, weight, bias in [("ln1", [c], c), ("ln2", [c], c), ("qkv", [3 * c, c], 3 * c),
                               ("proj", [c, c], c), ("fc", [4 * c, c], 4 * c),
                               ("fcproj", [c, 4 * c], c)]:
        shapes += [(f"blocks.0.{name}.weight", weight), (f"blocks.0.{name}.bias", [bias])]
    shapes += [("lnf.weight", [c]), ("lnf.bias", [c])]
    tensors = []
    for i, (name, shape) in enumerate(shapes):
        count = 1
        for d in shape:
            count *= d
        tensors.append((name, "F32", shape, [round(0.1 * ((i + j) % 7 - 3), 2) for j in range(count)]))
    architecture = {"type": "gpt", "n_layer": 1, "n_head": 2, "n_embd": c, "block_size": block,
                    "vocab_size": vocab, "dropout": 0.0, "bias": True}
    metadata = {
        "format": "lathe.bundle/1",
        "lathe.version": "0.1.0",
        "lathe.architecture": compact(architecture),
        "lathe.preprocessing": compact({"scale": 1.0, "mean": [0.0], "std": [1.0]}),
        "lathe.task": compact({"task": "language_model", "tokenizer": tokenizer}),
        "lathe.metrics": compact({"validation_loss": 1.0}),
    }
    return safetensors(tensors, metadata)


def safetensors_seeds():
    t = "fuzz_safetensors"
    write(t, "bundle_mlp.safetensors", mlp_bundle())
    write(t, "bundle_gpt_char.safetensors", gpt_bundle({"kind": "char", "characters": [97, 98, 99]}))
    write(t, "bundle_gpt_bpe.safetensors", gpt_bundle({"kind": "bpe", "merges": [[97, 98]]}))
    write(t, "hf_padded_metadata_first.safetensors", safetensors(
        [("ids", "I64", [2], [3, -1]), ("lm_head.bias", "F32", [2], [0.5, -0.25]),
         ("embed.weight", "F16", [2, 3], [1, 2, 3, -1, 0, 0.5])],
        {"format": "pt"}, metadata_first=True))
    write(t, "dtypes.safetensors", safetensors(
        [("a", "BF16", [2], [1.0, -2.5]), ("b", "I32", [1], [7]), ("c", "I16", [2], [-1, 1]),
         ("d", "I8", [1], [-8]), ("e", "U8", [2], [0, 255]), ("f", "U16", [1], [65535]),
         ("g", "U32", [1], [1]), ("h", "U64", [1], [5]), ("i", "BOOL", [2], [1, 0]),
         ("j", "F64", [1], [0.125])]))
    write(t, "empty_header.safetensors", safetensors([], pad=False))
    write(t, "zero_size.safetensors", safetensors(
        [("e", "F32", [0, 3], []), ("s", "F32", [], [2.0])], {"note": "scalar and empty"}))
    # Near-valid: one field off each.
    bad = mlp_bundle()
    write(t, "bad_trailing_byte.safetensors", bad + b"\0")
    header = b'{"__metadata__":{"k":1}}'
    write(t, "bad_metadata_int.safetensors", struct.pack("<Q", len(header)) + header)
    header = b'{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}'
    write(t, "bad_offsets.safetensors", struct.pack("<Q", len(header)) + header + b"\0" * 4)
    header = b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{}}'
    write(t, "bad_duplicate.safetensors", struct.pack("<Q", len(header)) + header + b"\0" * 4)


# ---- IDX ----

def idx(type_code, dims, payload):
    return bytes([0, 0, type_code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload


def idx_seeds():
    t = "fuzz_idx"
    write(t, "images_u8.idx", idx(0x08, [2, 3, 3], bytes(range(18))))
    write(t, "labels_u8.idx", idx(0x08, [5], bytes([0, 9, 3, 1, 7])))
    write(t, "i8.idx", idx(0x09, [4], bytes([0x80, 0xff, 0, 0x7f])))
    write(t, "i16.idx", idx(0x0b, [3], struct.pack(">3h", -32768, 258, 32767)))
    write(t, "i32.idx", idx(0x0c, [2, 2], struct.pack(">4i", -2**31, 16909060, -1, 2**31 - 1)))
    write(t, "f32.idx", idx(0x0d, [1, 1, 3], struct.pack(">3f", 1.5, -0.25, 3e38)))
    write(t, "f64.idx", idx(0x0e, [3], struct.pack(">3d", 0.1, -1e30, float("-inf"))))
    write(t, "zero_dim.idx", idx(0x08, [0, 28, 28], b""))
    write(t, "images_u8.idx.gz", gzip.compress(idx(0x08, [2, 2, 2], bytes(range(8))), mtime=0))
    write(t, "labels_two_members.gz",
          gzip.compress(idx(0x08, [4], bytes([1, 2])), mtime=0) +
          gzip.compress(bytes([3, 4]), mtime=0))
    write(t, "bad_truncated.idx", idx(0x08, [60000, 28, 28], bytes(16)))
    write(t, "bad_rank0.idx", idx(0x08, [], b"\x07"))
    write(t, "bad_f64_range.idx", idx(0x0e, [1], struct.pack(">d", 1e300)))


# ---- CSV ----

def csv_seeds():
    t = "fuzz_csv"
    write(t, "simple.csv", "x1,x2,y\n1,2,3\n4.5,-6e-1,0\n")
    write(t, "quoted_crlf.csv",
          '"x ""one""",\t"y" , z\r\n"1", 2 ,3\r\n"4","5","6e2"\r\n\r\n\r\n')
    write(t, "target_middle_bom.csv", "\ufeffa,y,b\n+1,2,3\n-0,0x1,1e-45\n")
    write(t, "multiline_quote.csv", 'x,"y\nname"\n1,2\n')
    write(t, "one_row_no_newline.csv", "y,x\n1,2")
    write(t, "bad_ragged.csv", "x,y\n1,2\n3\n")
    write(t, "bad_cell.csv", "x,y\n1,abc\n")
    write(t, "bad_nan.csv", "x,y\nnan,1\ninf,2\n1e39,3\n")
    write(t, "bad_open_quote.csv", 'x,y\n"1,2\n')
    write(t, "bad_blank_between.csv", "x,y\n1,2\n\n3,4\n")
    write(t, "gzip.csv.gz", gzip.compress(b"x,y\n1,2\n3,4\n", mtime=0))


# ---- config ----

def config_seeds():
    t = "fuzz_config"
    examples = os.path.join(os.path.dirname(ROOT), "..", "examples")
    for name in ("fashion_mlp", "house_prices", "mnist_mlp"):
        shutil.copyfile(os.path.join(examples, name, "config.toml"),
                        os.path.join(ROOT, t, "example_%s.toml" % name))
    small = """[data]
format = "csv"
path = "houses.csv"
target = "medv"

[preprocess]
standardize = true

[model]
layers = [
  { type = "linear", in = 13, out = 8 },
  { type = "leaky_relu", negative_slope = 0.1 },
  { type = "dropout", p = 0.25 },
  { type = "gelu", approximate = "tanh" },
  { type = "linear", in = 8, out = 1, bias = false },
]

[loss]
type = "mse"

[optimizer]
type = "sgd"
lr = 0.05
momentum = 0.9
nesterov = true

[schedule]
type = "step"
step_size = 10
gamma = 0.5

[trainer]
epochs = 3
batch_size = 32
"""
    write(t, "small_csv.toml", small)
    write(t, "with_set_overrides.toml", small +
          "#set trainer.epochs=2\n#set model.layers.0.out=4\n#set model.layers.4.in=4\n"
          "#set data.target=price\n#set optimizer={type=\"adamw\"}\n")
    write(t, "idx_sigmoid_tanh.toml", """[data]
format = "idx"
train_images = "a"
train_labels = "b"
test_images = "c"
test_labels = "d"
class_names = ["x", "y"]

[preprocess]
scale = 0.5
normalize_mean = 0.1
normalize_std = 0.2

[model]
layers = [{ type = "flatten" }, { type = "linear", in = 4, out = 3 }, { type = "sigmoid" },
          { type = "tanh" }, { type = "relu" }]

[trainer]
progress = "never"
early_stopping_patience = 2
clip_grad_norm = 1.0
drop_last = true
""")
    write(t, "bad_unknown_key.toml", small.replace("momentum", "momentom"))
    write(t, "bad_layer.toml", small.replace('type = "gelu"', 'type = "gelux"'))
    write(t, "bad_syntax.toml", "[data\nformat = \"csv\"\n")


# ---- request bodies (fuzz_body_decoder: encoding byte, piece-size byte, body) ----

def body_decoder_seeds():
    t = "fuzz_body_decoder"
    body = compact({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                                "data": [1, 2, 3, 4]}]}).encode()
    write(t, "identity", bytes([0, 255]) + body)
    write(t, "gzip_whole", bytes([1, 255]) + gzip.compress(body, mtime=0))
    write(t, "gzip_bytewise", bytes([1, 0]) + gzip.compress(body, mtime=0))
    write(t, "deflate", bytes([2, 16]) + zlib.compress(body))
    write(t, "gzip_bomb", bytes([1, 255]) + gzip.compress(b"0" * (1 << 17), mtime=0))
    write(t, "gzip_cut", bytes([1, 7]) + gzip.compress(body, mtime=0)[:20])


def main():
    for target in ("fuzz_safetensors", "fuzz_idx", "fuzz_csv", "fuzz_config", "fuzz_body_decoder"):
        shutil.rmtree(os.path.join(ROOT, target), ignore_errors=True)
        os.makedirs(os.path.join(ROOT, target))
    safetensors_seeds()
    idx_seeds()
    csv_seeds()
    config_seeds()
    body_decoder_seeds()


if __name__ == "__main__":
    main()
