#!/usr/bin/env bash
# The Debian package: `cpack -G DEB` makes lathe_<version>_amd64.deb whose Depends come from the
# shared libraries the binaries link; `apt-get install ./lathe_*.deb` gives a working lathe on
# PATH, the headers and the CMake package, with which a user's project builds and runs; the
# package is removed again at the end. Needs root (or password-less sudo) for apt-get.
# Usage: deb.sh BUILD_DIR SOURCE_DIR
set -u
build="$1"
source_dir="$2"
work=$(mktemp -d)
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
installed=""
cleanup() {
  [ -n "$installed" ] && "${sudo[@]}" apt-get remove -y -qq lathe >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

(cd "$work" && cpack -G DEB --config "$build/CPackConfig.cmake" >"$work/cpack.log" 2>&1) ||
  { cat "$work/cpack.log"; exit 1; }
deb=$(ls "$work"/lathe_*_amd64.deb)
depends=$(dpkg-deb -f "$deb" Depends)
echo "ok   $(basename "$deb"), Depends: $depends"
for library in libopenblas0 libprotobuf libopenmpi libcpp-httplib libmicrohttpd libfmt; do
  echo "$depends" | grep -q "$library" || fail "Depends lacks $library (from dpkg-shlibdeps)"
done
if dpkg-query -W -f='${Status}' lathe 2>/dev/null | grep -q "install ok installed"; then
  echo "FAIL: a lathe package is installed already; remove it first"
  exit 1
fi
"${sudo[@]}" apt-get install -y -qq "$deb" >"$work/apt.log" 2>&1 ||
  { echo "FAIL: apt-get install ./$(basename "$deb") (needs root):"; cat "$work/apt.log"; exit 1; }
installed=yes
/usr/bin/lathe --version | head -1 | grep -q "^lathe " || fail "/usr/bin/lathe does not run"
echo "ok   installed: $(/usr/bin/lathe --version | head -1), man page $(man -w lathe 2>/dev/null || echo missing)"
cmake -S "$source_dir/tests/consumer/cmake" -B "$work/cmake" -DCMAKE_BUILD_TYPE=Release \
  -Dlathe_DIR=/usr/lib/cmake/lathe \
  >"$work/cmake.log" 2>&1 && cmake --build "$work/cmake" >>"$work/cmake.log" 2>&1 ||
  { cat "$work/cmake.log"; fail "a CMake project against the installed package"; }
grep -q "/usr/lib/liblathe.a" "$work/cmake/CMakeFiles/train_save_load.dir/link.txt" ||
  fail "the project did not link the package's liblathe"
"$work/cmake/train_save_load" "$work/deb.safetensors" || fail "the program built against the package"

[ "$failures" -eq 0 ] || { echo "$failures failures"; exit 1; }
echo "the .deb installs a working lathe, its headers and its CMake package"
