# Sourced by the bench scripts that run the PyTorch side of a comparison (from the repository
# root): stops with what to run when Debian's python3-torch is missing.
need_torch() {
  /usr/bin/python3 -c 'import torch' 2>/dev/null ||
    { echo "PyTorch is missing: run bash scripts/setup.sh --torch" >&2; exit 1; }
}
