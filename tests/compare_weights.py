"""Compares the float32 tensors of two safetensors files (lathe bundles or checkpoints).

Usage: compare_weights.py A B TOLERANCE [--prefix P]

For every tensor (only those whose name starts with P when given) prints nothing unless it
differs; always prints the largest absolute difference and the largest magnitude. Exits 1 if the
files hold different tensor names or shapes, or if a difference exceeds TOLERANCE.
"""
import json
import struct
import sys


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    header.pop("__metadata__", None)
    body = data[8 + length:]
    tensors = {}
    for name, info in header.items():
        if info["dtype"] != "F32":
            continue
        begin, end = info["data_offsets"]
        count = (end - begin) // 4
        tensors[name] = (info["shape"], struct.unpack(f"<{count}f", body[begin:end]))
    return tensors


def main():
    args = sys.argv[1:]
    prefix = ""
    if "--prefix" in args:
        i = args.index("--prefix")
        prefix = args[i + 1]
        del args[i:i + 2]
    a_path, b_path, tolerance = args[0], args[1], float(args[2])
    a = {k: v for k, v in read(a_path).items() if k.startswith(prefix)}
    b = {k: v for k, v in read(b_path).items() if k.startswith(prefix)}
    if a.keys() != b.keys() or not a:
        sys.exit(f"FAIL: tensor names differ or are empty: {sorted(a)} vs {sorted(b)}")
    worst, worst_name, magnitude = 0.0, "", 0.0
    for name in sorted(a):
        (shape_a, values_a), (shape_b, values_b) = a[name], b[name]
        if shape_a != shape_b:
            sys.exit(f"FAIL: {name}: shape {shape_a} vs {shape_b}")
        for x, y in zip(values_a, values_b):
            magnitude = max(magnitude, abs(x))
            if abs(x - y) > worst:
                worst, worst_name = abs(x - y), name
    print(f"{len(a)} tensors: largest difference {worst:.3g} (in {worst_name or '-'}), "
          f"largest magnitude {magnitude:.3g}, tolerance {tolerance:g}")
    sys.exit(1 if worst > tolerance else 0)


main()
