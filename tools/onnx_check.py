#!/usr/bin/python3
"""Checks an ONNX file the way the ONNX project does: onnx.checker.check_model with
full_check=True (the model, every node against its operator schema at the imported opset, and
strict shape inference). Prints a one-line summary; exits 1 with the checker's message otherwise.

Usage: /usr/bin/python3 tools/onnx_check.py MODEL.onnx [--outputs NAME,NAME...]

Uses Debian's python3-onnx (1.12); run it with /usr/bin/python3, which has that package.
"""
import argparse
import sys

try:
    import onnx
except ImportError as e:
    sys.exit(f"onnx_check: cannot import onnx ({e}); install python3-onnx (scripts/setup.sh)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--outputs", help="comma-separated output names the graph must have")
    args = parser.parse_args()

    model = onnx.load(args.model)
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as e:
        sys.exit(f"onnx_check: {args.model}: invalid: {e}")

    outputs = [o.name for o in model.graph.output]
    if args.outputs is not None and outputs != args.outputs.split(","):
        sys.exit(f"onnx_check: {args.model}: outputs {outputs}, expected {args.outputs.split(',')}")

    def dims(value):
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in model.opset_import)
    print(f"{args.model}: valid (onnx {onnx.__version__} checker, full_check): IR {model.ir_version}, "
          f"opset {opsets}, producer {model.producer_name} {model.producer_version}, "
          f"{len(model.graph.node)} nodes, {len(model.graph.initializer)} initializers; inputs "
          + ", ".join(f"{i.name} {dims(i)}" for i in model.graph.input)
          + "; outputs " + ", ".join(f"{o.name} {dims(o)}" for o in model.graph.output))


if __name__ == "__main__":
    main()
