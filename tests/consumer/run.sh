#!/usr/bin/env bash
# lathe as a library, as a user gets it: installed (DESTDIR) into a staging prefix, then a CMake
# project (find_package(lathe)) and a Makefile project (pkg-config) are built against that
# prefix -- not the build tree -- and run: a few training steps, a bundle saved and loaded. A
# tensors-only program must need no protobuf, ONNX, MPI or HTTP library (ldd) and hold none of
# their code (nm).
# Usage: run.sh BUILD_DIR SOURCE_DIR
set -u
build="$1"
source_dir="$2"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage="$work/stage"
prefix=/usr/local
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

DESTDIR="$stage" cmake --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1 ||
  { cat "$work/install.log"; exit 1; }
for f in bin/lathe include/lathe/tensor.h lib/liblathe.a lib/cmake/lathe/lathe-config.cmake \
  lib/pkgconfig/lathe.pc share/man/man1/lathe.1 share/doc/lathe/config.md; do
  [ -e "$stage$prefix/$f" ] || fail "not installed: $prefix/$f"
done
"$stage$prefix/bin/lathe" --version | head -1 | grep -q "^lathe " || fail "the installed lathe does not run"
echo "ok   installed into $stage$prefix"

# CMake: find_package(lathe 0.1 CONFIG REQUIRED) from the staging prefix.
cmake -S "$source_dir/tests/consumer/cmake" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$stage$prefix" \
  -DCMAKE_BUILD_TYPE=Release >"$work/cmake.log" 2>&1 &&
  cmake --build "$work/cmake" >>"$work/cmake.log" 2>&1 || { cat "$work/cmake.log"; exit 1; }
grep -q "$stage$prefix/lib/liblathe.a" "$work/cmake/CMakeFiles/train_save_load.dir/link.txt" ||
  fail "the CMake project did not link the staged liblathe"
"$work/cmake/train_save_load" "$work/cmake.safetensors" || fail "the CMake project's program"

# pkg-config, from a Makefile.
export PKG_CONFIG_PATH="$stage$prefix/lib/pkgconfig"
mkdir -p "$work/consumer"
cp -r "$source_dir/tests/consumer/make" "$source_dir/tests/consumer/train_save_load.cpp" \
  "$work/consumer/"
make -s -C "$work/consumer/make" train_save_load >"$work/make.log" 2>&1 ||
  { cat "$work/make.log"; exit 1; }
"$work/consumer/make/train_save_load" "$work/make.safetensors" || fail "the Makefile project's program"
pkg-config --exists "lathe = $(sed -n 's/^Version: //p' "$PKG_CONFIG_PATH/lathe.pc")" ||
  fail "pkg-config lathe"
pkg-config --exists lathe-serve lathe-onnx || fail "pkg-config lathe-serve lathe-onnx"
# Every library the components' static link names must be there to link (a dependency's own
# Requires.private once pulled in gnutls's static libraries, which Debian's -dev packages lack).
echo 'int main() {}' >"$work/empty.cpp"
components="lathe lathe-serve lathe-onnx"
[ -f "$PKG_CONFIG_PATH/lathe-mpi.pc" ] && components="$components lathe-mpi"
for component in $components; do
  # shellcheck disable=SC2046
  c++ "$work/empty.cpp" -o "$work/empty" $(pkg-config --static --libs "$component") \
    >"$work/link.log" 2>&1 || fail "pkg-config --static --libs $component does not link: $(cat "$work/link.log")"
done

# A tensors-only program needs none of the optional parts' libraries.
"$work/cmake/tensors_only" || fail "tensors_only did not run"
libraries=$(ldd "$work/cmake/tensors_only")
optional="protobuf|onnx|libmpi|open-pal|httplib|microhttpd|libssl|brotli"
if echo "$libraries" | grep -Ei "$optional"; then
  fail "tensors_only links a library of an optional part"
fi
# The same check on the lathe command, which links every part, must see them.
ldd "$stage$prefix/bin/lathe" | grep -Eq "protobuf" && ldd "$stage$prefix/bin/lathe" | grep -Eq "libmpi" ||
  fail "the ldd check does not see the optional parts' libraries in the lathe command"
if nm -C "$work/cmake/tensors_only" | grep -Ei " (onnx::|httplib::|MPI_)" | head -3 | grep -q .; then
  fail "tensors_only holds code of an optional part"
fi
echo "ok   tensors_only needs: $(echo "$libraries" | awk '{print $1}' | tr '\n' ' ')"

[ "$failures" -eq 0 ] || { echo "$failures failures"; exit 1; }
echo "lathe works as an installed library through CMake and pkg-config"
