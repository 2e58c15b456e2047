#!/usr/bin/python3
"""How fast `lathe board` draws many long runs, measured in headless Chromium.

Writes RUNS runs of POINTS evaluation records each (metrics.jsonl with training and validation
loss, accuracy, learning rate and throughput: six charts, every record a point on each, plus
config.json and status.json), starts `lathe board` on them, loads the page and reads, with the
page's own performance.now(), when the first complete drawing (all runs fetched, every chart and
the table drawn) was done, counted from the start of the page load. The same is measured for one
run in the same session as the reference. The budget is 1 s for 50 runs of 10,000 points.

Usage: bench/board_bench.py LATHE [--runs 50] [--points 10000] [--repeat 3]
"""
import argparse
import json
import math
import os
import random
import re
import shutil
import subprocess
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--no-first-run',
         '--disable-dev-shm-usage', '--window-size=1400,1000']


def write_runs(root, runs, points):
    for r in range(runs):
        folder = os.path.join(root, f'sweep/lr{r:02d}')
        os.makedirs(folder)
        rng = random.Random(r)
        lr = 1e-3 * (1 + r)
        lines = []
        t0 = 1.7e9
        for i in range(points):
            step = 10 * (i + 1)
            loss = 2.3 * math.exp(-i / (points / 4)) + 0.2 + 0.05 * rng.random()
            lines.append(json.dumps({
                'step': step, 'epoch': i, 'train_loss': loss, 'learning_rate': lr,
                'seconds': 0.5, 'train_seconds': 0.4, 'examples_per_second': 20000 + rng.random() * 500,
                'time': t0 + 0.5 * (i + 1),
                'validation': {'count': 5000, 'loss': loss + 0.1, 'accuracy': 1 - loss / 3}}))
        with open(os.path.join(folder, 'metrics.jsonl'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
        with open(os.path.join(folder, 'config.json'), 'w') as f:
            json.dump({'optimizer': {'lr': lr, 'type': 'adam'}, 'trainer': {'epochs': points}}, f)
        with open(os.path.join(folder, 'status.json'), 'w') as f:
            json.dump({'status': 'finished', 'started': t0, 'finished': t0 + 0.5 * points}, f)


def measure(lathe, root, runs, points, repeat, work):
    board = subprocess.Popen([lathe, 'board', root, '--port', '0'], stdout=subprocess.PIPE, text=True)
    try:
        url = re.search(r'(http://\S+/)', board.stdout.readline()).group(1)
        options = webdriver.ChromeOptions()
        options.binary_location = '/usr/bin/chromium'
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f'--user-data-dir={work}/profile-{runs}')
        driver = webdriver.Chrome(service=Service('/usr/bin/chromedriver'), options=options)
        times = []
        try:
            for _ in range(repeat):
                driver.get(url)
                deadline = time.time() + 60
                timing = None
                while time.time() < deadline:
                    timing = driver.execute_script(
                        'return window.board && window.board.state.timing.firstRender != null'
                        ' ? window.board.state.timing : null')
                    if timing:
                        break
                    time.sleep(0.05)
                if not timing:
                    raise SystemExit('the page did not draw within 60 s')
                expected = runs * points
                if timing['points'] != expected:
                    raise SystemExit(f'drew {timing["points"]} points, expected {expected}')
                times.append(timing)
        finally:
            driver.quit()
        return times
    finally:
        board.kill()
        board.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('lathe')
    parser.add_argument('--runs', type=int, default=50)
    parser.add_argument('--points', type=int, default=10000)
    parser.add_argument('--repeat', type=int, default=3)
    a = parser.parse_args()
    work = tempfile.mkdtemp(prefix='lathe-board-bench-')
    try:
        many, one = os.path.join(work, 'many'), os.path.join(work, 'one')
        write_runs(many, a.runs, a.points)
        write_runs(one, 1, a.points)
        reference = measure(a.lathe, one, 1, a.points, a.repeat, work)
        measured = measure(a.lathe, many, a.runs, a.points, a.repeat, work)
        best_one = min(t['firstRender'] for t in reference)
        best = min(t['firstRender'] for t in measured)
        work_ms = min(t['firstRenderWork'] for t in measured)
        every = ', '.join(f'{t["firstRender"]:.0f}' for t in measured)
        print(f'lathe board, {a.runs} runs x {a.points} points (6 charts each): first complete '
              f'drawing {best:.0f} ms after the page load began (best of {a.repeat}; all: '
              f'{every} ms), of which drawing {work_ms:.0f} ms')
        print(f'reference, 1 run x {a.points} points, same session: {best_one:.0f} ms; '
              f'ratio {best / best_one:.2f}x')
        print(f'budget 1000 ms: {best / 1000:.2f} of it -> {"within" if best <= 1000 else "OVER"}')
        return 0 if best <= 1000 else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    raise SystemExit(main())
