#pragma once
// ONNX import: reads a ModelProto made anywhere (PyTorch, Keras, scikit-learn, lathe export) and
// runs its graph on lathe's tensors, float32 nodes through lathe's ops so that autograd reaches
// the initializers.
//
// Element types: lathe tensors are float32, float64 or int64, so an OnnxValue carries the ONNX
// element type beside its tensor. float16 and bfloat16 values live in float32 tensors (rounded
// to their type at every node's output); bool and every integer type of 32 bits or less live in
// int64 tensors (wrapped to their range at every node's output). Strings, complex numbers,
// sequences, optionals and subgraphs (If, Loop, Scan) are not supported; a model that uses them
// is refused when it is loaded, with the node named.
//
// A model is untrusted input: its size, every tensor's dims and data size, external data
// locations (only relative paths inside the model's folder), the graph's wiring (unknown inputs,
// cycles, duplicate outputs) and every node's operator are checked when it is loaded, and each
// problem is a lathe::Error naming the node or tensor. No tensor larger than
// OnnxLimits::max_tensor_bytes is ever allocated, whatever the model asks for.
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lathe/bundle.h"
#include "lathe/error.h"
#include "lathe/tensor.h"

namespace lathe {

// ONNX TensorProto.DataType values.
enum class OnnxType : std::int32_t {
  Undefined = 0,
  Float = 1,
  Uint8 = 2,
  Int8 = 3,
  Uint16 = 4,
  Int16 = 5,
  Int32 = 6,
  Int64 = 7,
  String = 8,
  Bool = 9,
  Float16 = 10,
  Double = 11,
  Uint32 = 12,
  Uint64 = 13,
  Complex64 = 14,
  Complex128 = 15,
  Bfloat16 = 16
};
const char* onnx_type_name(OnnxType type);  // "float32", "int64", "bool", ...
// The lathe dtype that holds values of `type`; throws OnnxUnsupported for strings and complex.
DType onnx_storage_dtype(OnnxType type);

struct OnnxValue {
  Tensor tensor;
  OnnxType type = OnnxType::Float;
  const Shape& shape() const { return tensor.shape(); }
};

// Something the model uses that lathe does not implement (an operator, an attribute value, an
// element type): the conformance runner reports these as "unsupported", not as failures.
class OnnxUnsupported : public Error {
 public:
  using Error::Error;
};

struct OnnxLimits {
  std::uint64_t max_model_bytes = 2ull << 30;   // protobuf's own limit
  std::uint64_t max_tensor_bytes = 4ull << 30;  // any one initializer, input or node output
};

// Reads a serialized TensorProto (.pb, as the ONNX test data and onnx_test_runner use) or a
// NumPy .npy file (float32, float64, int64, int32, uint8, bool; little-endian, C order).
OnnxValue read_onnx_tensor_file(const std::filesystem::path& path, const OnnxLimits& limits = {});
// Writes `value` as a serialized TensorProto named `name`, atomically.
void write_onnx_tensor_file(const std::filesystem::path& path, const OnnxValue& value,
                            const std::string& name);

struct OnnxGraphIO {
  std::string name;
  OnnxType type = OnnxType::Float;
  std::vector<std::string> dims;  // a number, a symbolic name ("N"), or "?" for unknown
  std::string describe() const;   // "input float32 [N,784]"
};

namespace onnx_detail {
struct Graph;
}

// A loaded model: its graph, its initializers, its inputs and outputs.
class OnnxGraph {
 public:
  static OnnxGraph load(const std::filesystem::path& path, const OnnxLimits& limits = {});
  // `folder` is where external data may be read from; empty refuses external data.
  static OnnxGraph parse(const std::string& bytes, const std::filesystem::path& folder,
                         const OnnxLimits& limits = {});

  // Graph inputs that are not initializers, and the graph outputs, in the model's order.
  const std::vector<OnnxGraphIO>& inputs() const;
  const std::vector<OnnxGraphIO>& outputs() const;
  std::int64_t opset() const;  // the default domain's operator set version
  std::size_t node_count() const;
  // Operator types in use, with how many nodes each ("Conv" -> 3).
  std::map<std::string, int> operator_counts() const;

  // Runs the graph. Every input in inputs() must be given, with its declared element type;
  // returns the outputs in outputs() order. Floating initializers are the tensors parameters()
  // returns, so gradients flow to them when grad mode is on and they require gradients.
  std::vector<OnnxValue> run(const std::map<std::string, OnnxValue>& inputs) const;

  // The float32 and float64 initializers, by their ONNX names, as trainable tensors.
  std::vector<NamedTensor> parameters() const;

 private:
  std::shared_ptr<onnx_detail::Graph> graph_;
};

// ---- Imported models as lathe models (src/onnx/import/onnx_module.cpp) ----
//
// Registers the layer type "onnx_graph" (an imported graph with one float32 input [N, ...] as a
// lathe module: its float32 initializers are the parameters, so bundles, predict, eval, serve,
// inspect and the trainer take it like any model) and the ".onnx" model file reader, so that
// load_bundle (and every command built on it) reads an .onnx file as import_onnx does with
// default options. Idempotent; the lathe command calls it at start.
void register_onnx_import();

struct OnnxImportOptions {
  // "classification", "regression", or "auto": classification when the output has more than one
  // column. A classifier whose chosen output comes from a Softmax returns the Softmax's input
  // (lathe's predictor applies the softmax itself).
  std::string task = "auto";
  std::vector<std::string> classes;                     // default "0", "1", ...
  std::string input, output;                            // default: the graph's first
  Preprocessing preprocessing = Preprocessing::none();  // applied to raw inputs before the graph
  // A graph that is a chain of nodes lathe's layers express (linear, conv2d, pooling, batch norm,
  // activations, flatten, reshape; a leading scale and shift) becomes those layers, checked to
  // give the graph's outputs on a random probe: the same inference plan, training speed and int8
  // path as a native model. true keeps the graph as it is (an onnx_graph layer).
  bool keep_graph = false;
};
// The model of an .onnx file as a bundle, ready for Predictor or save_bundle. Errors name the
// file; a model lathe cannot run throws OnnxUnsupported.
LoadedBundle import_onnx(const std::filesystem::path& path, const OnnxImportOptions& options = {});

// The ONNX backend test suite's layout: DATA_DIR/<folder>/<case>/model.onnx with
// test_data_set_*/input_*.pb and output_*.pb. run_onnx_conformance finds every case under `root`
// (a case folder, a folder of cases, or a folder of folders of cases).
struct OnnxCaseResult {
  std::string folder;  // "node", "simple", ...
  std::string name;    // "test_add_bcast"
  enum class Status { Pass, Fail, Unsupported } status = Status::Fail;
  std::string detail;                  // why it failed or what is unsupported
  std::vector<std::string> operators;  // the operator types of the model
};
struct OnnxConformanceOptions {
  double rtol = 1e-3;  // onnx's backend test runner's defaults
  double atol = 1e-7;
};
std::vector<OnnxCaseResult> run_onnx_conformance(const std::filesystem::path& root,
                                                 const OnnxConformanceOptions& options = {});
const char* onnx_case_status_name(OnnxCaseResult::Status status);  // "pass", "fail", ...

struct OnnxConformanceCount {
  int pass = 0, fail = 0, unsupported = 0;
  int total() const { return pass + fail + unsupported; }
};
struct OnnxConformanceSummary {
  std::map<std::string, OnnxConformanceCount> by_folder;
  // Over the "node" folder: each case counts once for every operator its model uses.
  std::map<std::string, OnnxConformanceCount> by_operator;
  OnnxConformanceCount total;
};
OnnxConformanceSummary summarize_onnx_conformance(const std::vector<OnnxCaseResult>& results);
// "node: 700/932 pass (75.1%), 40 fail, 192 unsupported" per folder, then the total.
std::string format_onnx_conformance_totals(const OnnxConformanceSummary& summary);
// docs/onnx_conformance.md: the totals per folder and the table by operator, in Markdown.
std::string onnx_conformance_markdown(const OnnxConformanceSummary& summary);
void write_onnx_conformance_markdown(const std::filesystem::path& path,
                                     const OnnxConformanceSummary& summary);

}  // namespace lathe
