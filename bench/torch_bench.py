#!/usr/bin/python3
"""PyTorch's side of bench/run.sh: the same workloads as bench/mlp_bench.cpp, written the
fastest way PyTorch allows (whole dataset as one tensor, index batching, no DataLoader), one
workload per process, one JSON line. Needs Debian's python3-torch (/usr/bin/python3).

  /usr/bin/python3 bench/torch_bench.py seed_epoch|wide_steps|cnn_epoch|infer_batch1|infer_batch1_int8|infer_batch1000 --threads N
  /usr/bin/python3 bench/torch_bench.py gpt_iter --corpus FILE --steps ITERATIONS --threads N

gpt_iter runs bench/torch_gpt.py (a verbatim copy of ../shared/reference/torch_gpt.py) as it is,
with estimates only at the start and the end (its ms/iter excludes them), and reads its summary.
"""
import argparse, math, contextlib, gzip, io, json, os, re, resource, runpy, struct, sys, time
import numpy as np
import torch, torch.nn as nn

def read_idx(path):
    with gzip.open(path, 'rb') as f:
        data = f.read()
    ndim = struct.unpack('>I', data[:4])[0] & 0xff
    dims = struct.unpack('>' + 'I' * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)

def mlp(widths):
    layers = []
    for i in range(len(widths) - 1):
        if i:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(widths[i], widths[i + 1]))
    return nn.Sequential(*layers)

def cnn():
    # ../shared/reference/torch_cnn.py's model
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, 10))

def train_steps(model, opt, X, Y, batch, steps):
    crit = nn.CrossEntropyLoss()
    perm = torch.randperm(len(Y))
    for s, i in enumerate(range(0, len(Y), batch)):
        if s == steps:
            break
        idx = perm[i:i + batch]
        opt.zero_grad()
        loss = crit(model(X[idx]), Y[idx])
        loss.backward()
        opt.step()

def start_peak_rss():
    """The RSS now, in MB; the kernel's peak RSS (VmHWM) starts again from it, so work done
    before (loading data) is not counted (/proc/self/clear_refs, Linux 4.0+)."""
    with open('/proc/self/statm') as f:
        rss = int(f.read().split()[1]) * resource.getpagesize() / 2**20
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')
    return rss

def peak_rss_mb_since_start():
    with open('/proc/self/status') as f:
        return next(int(l.split()[1]) for l in f if l.startswith('VmHWM:')) / 1024

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('workload', choices=['seed_epoch', 'wide_steps', 'cnn_epoch', 'infer_batch1', 'infer_batch1_int8', 'infer_batch1000', 'gpt_iter', 'attention'])
    ap.add_argument('--corpus', help='gpt_iter: the text file')
    ap.add_argument('--steps', type=int, default=0, help='cnn_epoch: stop after this many steps (0: the whole epoch)')
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--data', default='/usr/share/datasets/fashion-mnist')
    ap.add_argument('--epochs', type=int, default=1)
    ap.add_argument('--context', type=int, default=64, help='attention: the context length T')
    ap.add_argument('--width', type=int, default=1024, help="wide_steps: the hidden layers' width")
    ap.add_argument('--batch', type=int, default=256, help='wide_steps: the batch size')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    out = {'side': 'torch', 'workload': a.workload, 'threads': a.threads}
    if a.workload == 'gpt_iter':
        iters = str(a.steps or 100)
        sys.argv = ['torch_gpt.py', '--text', a.corpus, '--iters', iters, '--eval-every', iters,
                    '--eval-iters', '1', '--threads', str(a.threads)]
        log = io.StringIO()
        with contextlib.redirect_stdout(log):
            runpy.run_path(os.path.join(os.path.dirname(__file__), 'torch_gpt.py'), run_name='__main__')
        summary = log.getvalue().strip().splitlines()[-1]
        out['ms_per_iter'] = float(re.search(r'ms_per_iter=([0-9.]+)', summary).group(1))
        out['val_loss'] = float(re.search(r'val_loss=([0-9.]+)', summary).group(1))
    elif a.workload == 'attention':
        # torch_gpt.py's attention alone (width 128, 4 heads, batch 12), forward and backward.
        B, T, C, H = 12, a.context, 128, 4
        qkv = torch.randn(B, T, 3 * C, requires_grad=True)
        weights = torch.randn(B, T, C)
        mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
        def iteration():
            q, k, v = qkv.split(C, dim=2)
            q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in (q, k, v))
            att = (q @ k.transpose(-2, -1)) / math.sqrt(C // H)
            att = att.masked_fill(~mask, float('-inf')).softmax(-1)
            y = (att @ v).transpose(1, 2).reshape(B, T, C)
            (y * weights).sum().backward()
            qkv.grad = None
        rss_before = start_peak_rss()
        times, start = [], time.time()
        while len(times) < 5 or (time.time() - start < 2.0 and len(times) < 200):
            t0 = time.time()
            iteration()
            times.append((time.time() - t0) * 1000)
        out['context'] = T
        out['ms_per_iter'] = sorted(times)[len(times) // 2]
        out['peak_rss_growth_mb'] = peak_rss_mb_since_start() - rss_before
    elif a.workload == 'cnn_epoch':
        X = ((torch.from_numpy(read_idx(os.path.join(a.data, 'train-images-idx3-ubyte.gz')).copy())
              .float() / 255.0 - 0.5) / 0.5).unsqueeze(1)
        Y = torch.from_numpy(read_idx(os.path.join(a.data, 'train-labels-idx1-ubyte.gz')).astype(np.int64))
        model = cnn()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        steps = a.steps if a.steps > 0 else (len(Y) + 63) // 64
        train_steps(model, opt, X, Y, 64, 5)  # warm-up
        t0 = time.time()
        train_steps(model, opt, X, Y, 64, steps)
        out['seconds'] = time.time() - t0
        out['steps'] = steps
    elif a.workload in ('seed_epoch', 'wide_steps'):
        seed = a.workload == 'seed_epoch'
        widths = [784, 128, 64, 10] if seed else [784, a.width, a.width, 10]
        batch = 64 if seed else a.batch
        X = ((torch.from_numpy(read_idx(os.path.join(a.data, 'train-images-idx3-ubyte.gz')).copy())
              .float() / 255.0 - 0.5) / 0.5).reshape(-1, 784)
        Y = torch.from_numpy(read_idx(os.path.join(a.data, 'train-labels-idx1-ubyte.gz')).astype(np.int64))
        rss_before = start_peak_rss()
        model = mlp(widths)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        steps = (len(Y) + batch - 1) // batch if seed else 60
        train_steps(model, opt, X, Y, batch, 20 if seed else 5)  # warm-up
        t0 = time.time()
        for _ in range(a.epochs if seed else 1):
            train_steps(model, opt, X, Y, batch, steps)
        out['seconds'] = (time.time() - t0) / (a.epochs if seed else 1)
        out['steps'] = steps
        out['width'], out['batch'] = widths[1], batch
        out['peak_rss_growth_mb'] = peak_rss_mb_since_start() - rss_before
    else:
        batch = 1000 if a.workload == 'infer_batch1000' else 1
        model = mlp([784, 128, 64, 10]).eval()
        if a.workload == 'infer_batch1_int8':
            # PyTorch's own int8 inference for linear layers: int8 weights, each batch's
            # activations quantized when it runs (dynamic quantization).
            model = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
        x = torch.randn(batch, 784)
        best = float('inf')
        with torch.no_grad():
            model(x)
            probe = time.time(); model(x); probe = max(time.time() - probe, 1e-7)
            calls = max(1, int(0.2 / probe))
            for _ in range(7):
                t0 = time.time()
                for _ in range(calls):
                    model(x)
                best = min(best, (time.time() - t0) / calls)
        out['samples_per_second'] = batch / best
    out['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))

if __name__ == '__main__':
    main()
