#!/usr/bin/python3
"""`lathe board` in a real browser (headless Chromium through Debian's chromedriver + selenium).

Trains two seed MLPs on a Fashion-MNIST subset (one to the end, one still training), starts
`lathe board` on a free port and drives the page: no console errors, no request leaving
127.0.0.1, the running run's curve gains points, the runs overlay, toggling hides one, smoothing
changes the drawn values, the hparams table shows exactly the keys that differ, a malformed and
a half-written line are skipped and shown, Ctrl-C on the running run shows it stopped, and a
screenshot is written to OUT_DIR/board.png.

Usage: board_browser.py LATHE SOURCE_DIR OUT_DIR [--long]
  --long: a bigger subset and more points (for a screenshot of a fuller board); the default is
          the short run CI uses (about 30 s).
"""
import gzip
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

FASHION = '/usr/share/datasets/fashion-mnist'
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                  '--disable-component-update', '--disable-sync', '--no-first-run',
                  '--disable-dev-shm-usage', '--window-size=1400,1500']

checks = 0


def ok(message):
    global checks
    checks += 1
    print('ok  ', message, flush=True)


class Failure(Exception):
    pass


def fail(message):
    raise Failure(message)


def wait_for(what, predicate, timeout=90, interval=0.25):
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.time() > deadline:
            fail(f'timed out after {timeout} s waiting for {what}')
        time.sleep(interval)


def fashion_subset(n, images_path, labels_path):
    """IDX files of the first n Fashion-MNIST test images and labels (tests/lib/fashion_subset.sh)."""
    with gzip.open(f'{FASHION}/t10k-images-idx3-ubyte.gz') as f:
        f.read(16)
        pixels = f.read(n * 784)
    with gzip.open(f'{FASHION}/t10k-labels-idx1-ubyte.gz') as f:
        f.read(8)
        labels = f.read(n)
    with open(images_path, 'wb') as f:
        f.write(struct.pack('>IIII', 0x803, n, 28, 28) + pixels)
    with open(labels_path, 'wb') as f:
        f.write(struct.pack('>II', 0x801, n) + labels)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith('--')]
    long_mode = '--long' in sys.argv
    if len(args) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    lathe, source_dir, out_dir = args
    os.makedirs(out_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix='lathe-board-test-')
    processes = []
    driver = None
    try:
        n = 6000 if long_mode else 2000
        images, labels = f'{work}/images.idx', f'{work}/labels.idx'
        fashion_subset(n, images, labels)
        runs = f'{work}/runs'
        config = f'{source_dir}/examples/fashion_mlp/config.toml'

        def train(name, epochs, optimizer, lr):
            sets = [f'optimizer.type={optimizer}', f'data.train_images={images}', f'data.train_labels={labels}',
                    f'data.test_images={images}', f'data.test_labels={labels}',
                    'data.validation_fraction=0.1', f'trainer.epochs={epochs}',
                    f'optimizer.lr={lr}', 'trainer.log_every=5',
                    f'trainer.output_dir={runs}/fashion/{name}']
            command = [lathe, 'train', config] + [a for s in sets for a in ('--set', s)]
            log = open(f'{work}/{name}.log', 'w')
            return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                    env=dict(os.environ, LATHE_NUM_THREADS='1'))

        # Run A trains to the end before the board starts.
        finished = train('mlp_adam_lr0.001', 4 if long_mode else 2, 'adam', 0.001)
        processes.append(finished)
        if finished.wait(timeout=300) != 0:
            fail('training run A failed: ' + open(f'{work}/mlp_adam_lr0.001.log').read())
        ok('run A trained: ' + open(f'{work}/mlp_adam_lr0.001.log').read().splitlines()[-2])
        # A symlink out of the runs folder, which the board must never follow.
        os.symlink('/', f'{runs}/escape')

        # Started from the folder above the runs, as a user would: `lathe board runs`.
        board = subprocess.Popen([os.path.abspath(lathe), 'board', 'runs', '--port', '0'],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 cwd=work)
        processes.append(board)
        line = board.stdout.readline()
        match = re.search(r'open (http://127\.0\.0\.1:(\d+)/)', line)
        if not match:
            fail(f'no address in the board\'s first line: {line!r}')
        url, port = match.group(1), match.group(2)
        ok(f'lathe board listening: {line.strip()}')

        import urllib.error
        import urllib.request
        for path in ['api/data?run=escape', 'api/data?run=..%2F..%2Fetc', 'api/data?run=%2Fetc',
                     'api/data?run=fashion%2F..%2F..', 'etc/passwd']:
            try:
                urllib.request.urlopen(url + path)
                fail(f'{path} was answered')
            except urllib.error.HTTPError as e:
                if e.code != 404:
                    fail(f'{path}: HTTP {e.code}, not 404')
        ok('names leaving the runs folder (.., absolute, a symlink out): 404')

        run_a, run_b = 'fashion/mlp_adam_lr0.001', 'fashion/mlp_sgd_lr0.05'

        options = webdriver.ChromeOptions()
        options.binary_location = '/usr/bin/chromium'
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f'--user-data-dir={work}/chromium-profile')
        options.set_capability('goog:loggingPrefs', {'browser': 'ALL', 'performance': 'ALL'})
        driver = webdriver.Chrome(service=Service('/usr/bin/chromedriver'), options=options)
        driver.set_page_load_timeout(30)
        started = time.time()
        driver.get(url)
        inspect = lambda: driver.execute_script('return window.board && window.board.inspect()')

        def texts(selector):
            # Read in one script: the board redraws its table while it polls, so an element
            # found first and read later can be gone by then.
            return driver.execute_script(
                'return Array.from(document.querySelectorAll(arguments[0]), e => e.innerText)',
                selector)

        def click(selector):
            # Found and clicked again if the table was redrawn between the two.
            for _ in range(20):
                try:
                    return driver.find_element(By.CSS_SELECTOR, selector).click()
                except StaleElementReferenceException:
                    time.sleep(0.05)
            fail(f'{selector} was redrawn under every click')

        def drawn(chart, run, kind='smoothed'):
            state = inspect()
            for s in (state or {}).get('charts', {}).get(chart, []):
                if s['run'] == run and s['kind'] == kind:
                    return s
            return None

        wait_for('run A drawn', lambda: drawn('train_loss_log', run_a), timeout=60)
        ok(f'page drawn with run A {time.time() - started:.1f} s after loading')

        # Run B starts after the page was opened, and trains "forever" (stopped at the end).
        running = train('mlp_sgd_lr0.05', 100000, 'sgd', 0.05)
        processes.append(running)
        started = time.time()
        wait_for('run B to appear', lambda: drawn('train_loss_log', run_b), timeout=120)
        ok(f'run B, started after the page opened, appears {time.time() - started:.1f} s after '
           'its start')

        first = drawn('train_loss_log', run_b)['points']
        second = wait_for('run B to gain points',
                          lambda: (drawn('train_loss_log', run_b)['points'] > first and
                                   drawn('train_loss_log', run_b)['points']), timeout=60)
        ok(f'running run gains points while it trains: {first} then {second}')
        wait_for('run B evaluated', lambda: drawn('val_accuracy', run_b), timeout=120)
        ok('a validation point of the running run appears')

        # Overlay: both runs in every chart they have data for, each its own colour.
        state = inspect()
        colours = {r['name']: r['color'] for r in state['runs']}
        if colours[run_a] == colours[run_b]:
            fail('both runs have the same colour')
        for chart in ['train_loss_log', 'val_loss', 'val_accuracy', 'learning_rate', 'throughput']:
            runs_drawn = {s['run'] for s in state['charts'].get(chart, [])}
            if runs_drawn != {run_a, run_b}:
                fail(f'{chart} draws {runs_drawn}')
        ok('two runs overlay in every chart, one colour each')

        click(f'input.toggle[data-run="{run_b}"]')
        state = inspect()
        if any(s['run'] == run_b for c in state['charts'].values() for s in c):
            fail('run B still drawn after toggling it off')
        if not drawn('train_loss_log', run_a):
            fail('run A went with run B')
        click(f'input.toggle[data-run="{run_b}"]')
        wait_for('run B back', lambda: drawn('train_loss_log', run_b), timeout=30)
        ok('toggling run B hides it from every chart, and back')

        def set_smoothing(value):
            driver.execute_script(
                "const s = document.getElementById('smoothing'); s.value = arguments[0];"
                "s.dispatchEvent(new Event('input'));", value)

        smoothed = drawn('train_loss_log', run_a)
        raw = drawn('train_loss_log', run_a, 'raw')
        set_smoothing(0)
        plain = drawn('train_loss_log', run_a)
        if drawn('train_loss_log', run_a, 'raw'):
            fail('smoothing 0 still draws a separate raw line')
        if abs(plain['sum'] - raw['sum']) > 1e-9 * abs(raw['sum']):
            fail(f'smoothing 0 should draw the raw values: {plain["sum"]} vs {raw["sum"]}')
        if abs(smoothed['sum'] - plain['sum']) < 1e-6:
            fail('smoothing 0.6 draws the same values as 0')
        set_smoothing(0.95)
        heavy = drawn('train_loss_log', run_a)
        if abs(heavy['sum'] - smoothed['sum']) < 1e-6:
            fail('smoothing 0.95 draws the same values as 0.6')
        set_smoothing(0.6)
        ok(f'smoothing changes the drawn values (sums: 0 -> {plain["sum"]:.3f}, '
           f'0.6 -> {smoothed["sum"]:.3f}, 0.95 -> {heavy["sum"]:.3f})')

        expected = ['optimizer.lr', 'optimizer.type', 'trainer.epochs']
        headers = texts('#runs th.hparam')
        if headers != expected:
            fail(f'hparams columns {headers}, expected {expected}')
        ok(f'hparams table shows exactly the keys that differ: {headers}')

        # x axes, log scale, filter: the charts follow.
        for axis in ['epoch', 'time', 'step']:
            driver.execute_script(
                "const x = document.getElementById('x-axis'); x.value = arguments[0];"
                "x.dispatchEvent(new Event('change'));", axis)
            if not drawn('val_loss', run_a):
                fail(f'nothing drawn against {axis}')
        driver.find_element(By.ID, 'log-scale').click()
        if not drawn('train_loss_log', run_a):
            fail('nothing drawn on a log scale')
        driver.find_element(By.ID, 'log-scale').click()
        driver.find_element(By.ID, 'filter').send_keys('adam')
        wait_for('the filter', lambda: not drawn('train_loss_log', run_b), timeout=30)
        driver.find_element(By.ID, 'filter').clear()
        driver.execute_script("document.getElementById('filter').dispatchEvent(new Event('input'))")
        wait_for('the filter cleared', lambda: drawn('train_loss_log', run_b), timeout=30)
        ok('x axis by step, epoch and wall time, log-scale y, filter by name')

        # Zoom: drag across a chart to show that range of steps, double-click to see all again.
        plot = driver.find_element(By.CSS_SELECTOR, '[data-panel="train_loss_log"] .u-over')
        width = plot.size['width']
        webdriver.ActionChains(driver).move_to_element_with_offset(plot, -width // 4, 0) \
            .click_and_hold().move_by_offset(width // 4, 0).release().perform()
        scale = "const u = board.state.charts.get('train_loss_log').plot; return [u.scales.x.min, u.scales.x.max]"
        zoomed = driver.execute_script(scale)
        webdriver.ActionChains(driver).double_click(plot).perform()
        whole = driver.execute_script(scale)
        if not (whole[0] <= zoomed[0] < zoomed[1] <= whole[1]) or zoomed[1] - zoomed[0] > 0.4 * (whole[1] - whole[0]):
            fail(f'zoom: dragged to {zoomed}, reset to {whole}')
        ok(f'drag zooms to steps {zoomed[0]:.0f}..{zoomed[1]:.0f}, double-click shows all '
           f'({whole[0]:.0f}..{whole[1]:.0f})')

        # A malformed line and a half-written one in a finished run's metrics: skipped, shown.
        with open(f'{runs}/{run_a}/metrics.jsonl', 'a') as f:
            f.write('this is not json\n{"step": 99, "epo')
        row = f'#runs tbody tr[data-run="{run_a}"]'
        note = wait_for('the skipped-line note', lambda: ' '.join(texts(row + ' .warn')),
                        timeout=30)
        if 'malformed line of metrics.jsonl skipped' not in note or 'incomplete' not in note:
            fail(f'note: {note!r}')
        ok(f'malformed and half-written lines skipped and shown: {note!r}')

        # Ctrl-C stops the running run; the board says so.
        running.send_signal(signal.SIGINT)
        code = running.wait(timeout=60)
        if code != 130:
            fail(f'lathe train after SIGINT exited {code}, not 130')
        status = f'#runs tbody tr[data-run="{run_b}"] .state'
        shown = wait_for('run B shown stopped', lambda: next(
            (t for t in texts(status) if t.startswith('stopped')), None), timeout=30)
        ok('SIGINT: the running run is shown ' + repr(shown.replace('\n', ': ')))

        # Hover over the middle of a chart: the values under the cursor, of the runs that reach it
        # (run A stopped far to the left).
        plot = driver.find_element(By.CSS_SELECTOR, '[data-panel="val_accuracy"] .u-over')
        webdriver.ActionChains(driver).move_to_element(plot).perform()
        values = ' '.join(texts('[data-panel="val_accuracy"] .values'))
        if run_b not in values or run_a in values or '%' not in values:
            fail(f'values under the cursor: {values!r}')
        ok(f'values under the cursor: {values!r}')

        screenshot = os.path.join(out_dir, 'board.png')
        driver.save_screenshot(screenshot)
        ok(f'screenshot: {screenshot}')

        severe = [e for e in driver.get_log('browser') if e['level'] == 'SEVERE']
        if severe:
            fail(f'console errors: {severe}')
        ok('no console errors')
        urls = set()
        for entry in driver.get_log('performance'):
            message = json.loads(entry['message'])['message']
            if message['method'] == 'Network.requestWillBeSent':
                urls.add(message['params']['request']['url'])
        local = f'http://127.0.0.1:{port}/'
        # chrome:// and data: URLs are the browser's own (its new-tab page before ours).
        network = [u for u in urls if re.match(r'(https?|wss?|ftp)://', u)]
        outside = [u for u in network if not u.startswith(local)]
        if outside or not network:
            fail(f'requests that left 127.0.0.1: {outside}')
        ok(f'all {len(network)} distinct network requests went to {local}')
        print(f'{checks} passed, 0 failed')
        return 0
    except Failure as e:
        print(f'FAIL: {e}', flush=True)
        if driver:
            driver.save_screenshot(os.path.join(out_dir, 'board-failure.png'))
        for name in os.listdir(work):
            if name.endswith('.log'):
                print(f'--- {name}:\n' + open(os.path.join(work, name)).read()[-2000:])
        print(f'{checks} passed, 1 failed')
        return 1
    finally:
        if driver:
            driver.quit()
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
