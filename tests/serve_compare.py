"""Sends IDX images to a running `lathe serve` and compares its answers with `lathe predict`'s CSV.

Usage: serve_compare.py URL MODEL IMAGES_IDX_GZ PREDICTIONS_CSV

Requests of 16 images go 8 at a time, so the server's dynamic batching mixes rows of different
requests in one batch and must hand each request back its own rows. Every image's class_index must
equal predict's and every probability must be within 1e-5 of it (the server and predict may group
rows into different batch sizes). Prints the largest difference; exits 1 on any mismatch.
"""
import concurrent.futures
import csv
import gzip
import json
import sys
import urllib.request

url, model, images_path, predictions_path = sys.argv[1:5]

with gzip.open(images_path, "rb") as f:
    raw = f.read()
count, rows, cols = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
pixels = raw[16:]
size = rows * cols

with open(predictions_path, newline="") as f:
    reader = csv.reader(f)
    header = next(reader)
    expected = [(int(r[1]), [float(v) for v in r[3:]]) for r in reader]
if len(expected) != count:
    sys.exit(f"FAIL: predict wrote {len(expected)} rows for {count} images")

chunk = 16


def infer(start):
    n = min(chunk, count - start)
    body = json.dumps({"id": str(start), "inputs": [{
        "name": "input", "shape": [n, size], "datatype": "UINT8",
        "data": list(pixels[start * size:(start + n) * size])}]}).encode()
    request = urllib.request.Request(f"{url}/v2/models/{model}/infer", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        answer = json.load(response)
    if answer.get("id") != str(start):
        raise RuntimeError(f"request {start} got the answer of request {answer.get('id')}")
    outputs = {o["name"]: o for o in answer["outputs"]}
    return start, outputs["class_index"]["data"], outputs["probabilities"]["data"]


classes = len(header) - 3
worst = 0.0
mismatches = 0
with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
    for start, indices, probabilities in pool.map(infer, range(0, count, chunk)):
        for i, index in enumerate(indices):
            want_index, want = expected[start + i]
            got = probabilities[i * classes:(i + 1) * classes]
            diff = max(abs(a - b) for a, b in zip(got, want))
            worst = max(worst, diff)
            if index != want_index or diff > 1e-5:
                mismatches += 1
                if mismatches <= 5:
                    print(f"FAIL: image {start + i}: serve class {index}, predict {want_index}, "
                          f"largest probability difference {diff:.3g}")
print(f"serve vs predict on {count} images: {count - mismatches} agree, "
      f"largest probability difference {worst:.3g}")
sys.exit(1 if mismatches else 0)
