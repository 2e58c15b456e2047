#!/usr/bin/python3
"""Normal requests to `lathe serve` (or `lathe board`) while many clients hold connections open
and send nothing useful (a "slowloris"): half send part of a request head and stop, half send a
whole head that announces a body and then trickle one byte of it every second. Then REQUESTS
normal requests, one connection each, are timed. Prints their latencies and exits 1 if any
failed or if the slowest took more than --budget-ms.

  serve_slowloris.py URL MODEL BODY_FILE [--stalled N] [--requests M] [--budget-ms B]
  serve_slowloris.py URL --get PATH [--stalled N] [--requests M] [--budget-ms B]

URL is the server's base (http://127.0.0.1:PORT), MODEL the served model's name, BODY_FILE a
valid infer request body; with --get the normal requests are GETs of PATH instead. Used by
tests/cli_serve_slowloris.sh (300 stalled clients), tests/cli_board_slowloris.sh and
bench/serve_load.sh (1,000, the target of issue 28 item 5: 50 ms)."""
import argparse, http.client, json, select, socket, statistics, sys, threading, time, urllib.parse

parser = argparse.ArgumentParser()
parser.add_argument('url')
parser.add_argument('model', nargs='?')
parser.add_argument('body_file', nargs='?')
parser.add_argument('--get', metavar='PATH', help='time GETs of PATH instead of infer requests')
parser.add_argument('--stalled', type=int, default=1000)
parser.add_argument('--requests', type=int, default=200)
parser.add_argument('--budget-ms', type=float, default=50)
args = parser.parse_args()
target = urllib.parse.urlparse(args.url)
if args.get is None and (args.model is None or args.body_file is None):
    parser.error('give MODEL and BODY_FILE, or --get PATH')
body = None if args.get else open(args.body_file, 'rb').read()
path = args.get or f'/v2/models/{args.model}/infer'

stalled = []
for i in range(args.stalled):
    s = socket.create_connection((target.hostname, target.port), timeout=10)
    if i % 2 == 0:
        s.sendall(f'POST {path} HTTP/1.1\r\nHost: x\r\nContent-Ty'.encode())
    else:
        s.sendall(f'POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
                  f'Content-Length: 100000\r\n\r\n{{'.encode())
    stalled.append(s)

stop = threading.Event()
def trickle():
    while not stop.wait(1.0):
        for s in stalled[1::2]:
            try:
                s.send(b' ')
            except OSError:
                pass
threading.Thread(target=trickle, daemon=True).start()
time.sleep(1.0)  # let the server accept them all

latencies, failures = [], []
for _ in range(args.requests):
    start = time.perf_counter()
    try:
        connection = http.client.HTTPConnection(target.hostname, target.port,
                                                timeout=max(1.0, 2 * args.budget_ms / 1000))
        if body is None:
            connection.request('GET', path)
        else:
            connection.request('POST', path, body, {'Content-Type': 'application/json'})
        response = connection.getresponse()
        response.read()
        connection.close()
        if response.status != 200:
            failures.append(f'HTTP {response.status}')
    except OSError as e:
        failures.append(f'{type(e).__name__}: {e}')
    latencies.append((time.perf_counter() - start) * 1000)
    if len(failures) >= 3:
        break  # starved: no need to wait out every timeout
stop.set()
# Whether the held connections were still open at the end (the server closed none of them).
readable, _, _ = select.select(stalled, [], [], 0)
closed = sum(1 for s in readable if s.recv(1, socket.MSG_PEEK) == b'')
for s in stalled:
    s.close()

latencies.sort()
p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
print(json.dumps({'stalled_connections': args.stalled, 'closed_by_server': closed,
                  'requests': args.requests, 'failures': len(failures),
                  'p50_ms': round(statistics.median(latencies), 2), 'p99_ms': round(p99, 2),
                  'max_ms': round(latencies[-1], 2), 'budget_ms': args.budget_ms}))
for failure in failures[:5]:
    print(f'failed: {failure}', file=sys.stderr)
sys.exit(1 if failures or latencies[-1] > args.budget_ms else 0)
