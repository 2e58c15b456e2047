// Printing in PyTorch's style: nested brackets, summarized with "..." past 1000 elements.
#include <fmt/format.h>

#include <ostream>

#include "lathe/tensor.h"
#include "src/tensor/node_name.h"

namespace lathe {
namespace detail {
namespace {
NodeNameFn g_node_name_fn = nullptr;  // constant-initialized, so set before any dynamic init
}  // namespace

void set_node_name_fn(NodeNameFn fn) {
  g_node_name_fn = fn;
}

const char* node_name(const Node& node) {
  return g_node_name_fn ? g_node_name_fn(node) : "unknown";
}
}  // namespace detail

namespace {

constexpr std::int64_t kSummarizeAbove = 1000;
constexpr std::int64_t kEdgeItems = 3;

std::string format_value(const Tensor& t, std::int64_t flat) {
  switch (t.dtype()) {
    case DType::Int64:
      return fmt::format("{}", t.data<std::int64_t>()[flat]);
    case DType::Float32:
      return fmt::format("{:.4f}", t.data<float>()[flat]);
    case DType::Float64:
      return fmt::format("{:.4f}", t.data<double>()[flat]);
  }
  return "?";
}

void print_axis(const Tensor& t, std::int64_t axis, std::int64_t offset, bool summarize, int indent,
                std::string& out) {
  const auto& shape = t.shape();
  std::int64_t stride = 1;
  for (std::size_t i = axis + 1; i < shape.size(); ++i) stride *= shape[i];
  const auto extent = shape[axis];
  const bool last_axis = axis + 1 == static_cast<std::int64_t>(shape.size());
  out += '[';
  for (std::int64_t i = 0; i < extent; ++i) {
    if (summarize && extent > 2 * kEdgeItems && i == kEdgeItems) {
      out += last_axis ? "..., " : fmt::format("...,\n{:{}}", "", indent + 1);
      i = extent - kEdgeItems;
    }
    if (last_axis) {
      out += format_value(t, offset + i);
    } else {
      print_axis(t, axis + 1, offset + i * stride, summarize, indent + 1, out);
    }
    if (i + 1 < extent) {
      out += last_axis ? ", " : fmt::format(",\n{:{}}", "", indent + 1);
    }
  }
  out += ']';
}

}  // namespace

std::string Tensor::to_string() const {
  if (!defined()) return "tensor(undefined)";
  std::string out = "tensor(";
  if (dim() == 0) {
    out += format_value(*this, 0);
  } else {
    print_axis(*this, 0, 0, numel() > kSummarizeAbove, 7, out);
  }
  out += fmt::format(", shape={}, dtype={}", shape_str(shape()), dtype_name(dtype()));
  if (grad_fn()) {
    out += fmt::format(", grad_fn={}", detail::node_name(*grad_fn()));
  } else if (requires_grad()) {
    out += ", requires_grad=true";
  }
  return out + ")";
}

std::ostream& operator<<(std::ostream& out, const Tensor& tensor) {
  return out << tensor.to_string();
}

}  // namespace lathe
