#!/usr/bin/python3
"""Plots bench/cost_curves.sh's JSON lines: for each sweep (width, batch, context) one SVG with
time and peak-memory growth against the swept size, lathe against PyTorch's faster thread count
at each point. Prints the figures as a table too.

  cost_plots.py RESULTS.jsonl OUT_DIR"""
import json, os, sys
from collections import defaultdict
import matplotlib
matplotlib.use('svg')
import matplotlib.pyplot as plt

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
out_dir = sys.argv[2]
sweeps = [
    ('width', 'wide_steps', lambda r: r['batch'] == 256, 'width', 'hidden width W (MLP 784-W-W-10, batch 256)',
     'seconds', 'seconds per 60 training steps'),
    ('batch', 'wide_steps', lambda r: r['width'] == 1024, 'batch', 'batch size (MLP 784-1024-1024-10)',
     'seconds', 'seconds per 60 training steps'),
    ('context', 'attention', lambda r: True, 'context', 'context T (attention, width 128, 4 heads, batch 12)',
     'ms_per_iter', 'ms per forward + backward'),
]
for name, workload, keep, key, xlabel, time_key, time_label in sweeps:
    points = defaultdict(dict)  # size -> side -> row
    for r in rows:
        if r['workload'] != workload or not keep(r):
            continue
        side = 'lathe' if r['side'] == 'lathe' else f"torch{r['threads']}"
        points[r[key]][side] = r
    sizes = sorted(points)
    lathe = [points[s]['lathe'] for s in sizes]
    # PyTorch at each point: the faster of its 1- and 2-thread runs.
    torch = [min((points[s][t] for t in ('torch1', 'torch2') if t in points[s]), key=lambda r: r[time_key])
             for s in sizes]
    print(f"\n{name}: {'size':>6} {'lathe':>10} {'pytorch':>10} {'ratio':>6} {'MB lathe':>9} {'MB torch':>9}")
    for s, l, t in zip(sizes, lathe, torch):
        print(f"{'':<{len(name)}}  {s:>6} {l[time_key]:>10.3f} {t[time_key]:>10.3f} "
              f"{t[time_key] / l[time_key]:>5.2f}x {l['peak_rss_growth_mb']:>9.1f} {t['peak_rss_growth_mb']:>9.1f}")
    fig, (ax_time, ax_memory) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, values, label in ((ax_time, time_key, time_label), (ax_memory, 'peak_rss_growth_mb', 'peak RSS growth, MB')):
        ax.plot(sizes, [r[values] for r in lathe], 'o-', label='lathe')
        ax.plot(sizes, [r[values] for r in torch], 's--', label='PyTorch 1.13 (faster of 1, 2 threads)')
        ax.set_xscale('log', base=2)
        ax.set_yscale('log')
        ax.set_xticks(sizes)
        ax.set_xticklabels([str(s) for s in sizes])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        ax.grid(True, which='both', alpha=0.3)
        ax.legend()
    fig.suptitle(f'Cost against {name}, this machine ({os.cpu_count()} CPUs), one run')
    fig.tight_layout()
    path = os.path.join(out_dir, f'cost_{name}.svg')
    fig.savefig(path)
    print(f"wrote {path}")
