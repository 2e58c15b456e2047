// InferencePlan: linear layers with transposed, padded weights; see include/lathe/inference.h.
#include <fmt/format.h>

#include <algorithm>

#include "lathe/autograd.h"
#include "lathe/error.h"
#include "lathe/inference.h"
#include "lathe/ops.h"
#include "lathe/parallel.h"
#include "src/deploy/conv_folding.h"
#include "src/deploy/int8_linear.h"
#include "src/tensor/blas.h"
#include "src/tensor/generic_vectors.h"

namespace lathe {
namespace {

#ifdef __AVX512F__
constexpr std::int64_t kLanes = 16;
#else
constexpr std::int64_t kLanes = 8;
#endif
using Vector = float __attribute__((vector_size(kLanes * sizeof(float))));
constexpr std::int64_t kTileVectors = 8;  // accumulators held in registers per pass
constexpr std::int64_t kTile = kLanes * kTileVectors;

// How many rows of W^T ahead row_tile asks for: the hardware prefetchers alone left the
// 784x128 layer's sweep (400 KB from L2 per example) waiting on the cache. Measured on the
// Intel Xeon, back-to-back batch-1 inference of the seed MLP: 5.1-6.4 us a call against 6.6-7.0
// without (8 alternating runs); 3 rows ahead was no better, 10 and 16 no better than 6.
constexpr std::int64_t kPrefetchRows = 6;

// y[0, padded_out) = bias + x W^T for one example, W^T stored [in, padded_out]; then relu.
// Each pass keeps up to kTileVectors output vectors in registers and streams W^T's rows.
template <std::int64_t Vectors>
void row_tile(const float* x, std::int64_t in, const float* weight_t, std::int64_t padded_out,
              const float* bias, bool relu, float* y) {
  Vector acc[Vectors];
  for (std::int64_t v = 0; v < Vectors; ++v)
    acc[v] = detail::load_unaligned<Vector>(bias + v * kLanes);
  for (std::int64_t j = 0; j < in; ++j) {
    const float* row = weight_t + j * padded_out;
    if (j + kPrefetchRows < in)
      for (std::int64_t v = 0; v < Vectors; ++v)
        __builtin_prefetch(row + kPrefetchRows * padded_out + v * kLanes);
    const Vector xj = Vector{} + x[j];
    for (std::int64_t v = 0; v < Vectors; ++v)
      acc[v] += detail::load_unaligned<Vector>(row + v * kLanes) * xj;
  }
  for (std::int64_t v = 0; v < Vectors; ++v) {
    if (relu) acc[v] = acc[v] > 0 ? acc[v] : Vector{};
    detail::store_unaligned(y + v * kLanes, acc[v]);
  }
}

// row_tile for a run-time count of 1..kTileVectors vectors.
template <std::int64_t... V>
void row_tail(std::int64_t vectors, const float* x, std::int64_t in, const float* weight_t,
              std::int64_t padded_out, const float* bias, bool relu, float* y,
              std::integer_sequence<std::int64_t, V...>) {
  ((vectors == V + 1 ? row_tile<V + 1>(x, in, weight_t, padded_out, bias, relu, y) : void()), ...);
}

// One example through one layer: the outputs in columns [begin, end) of W^T (multiples of
// kLanes) that lie below `out`, into y. A tile reaching past `out` goes through a local buffer,
// since y has no room for the padding.
void forward_row(const float* x, std::int64_t in, const float* weight_t, std::int64_t padded_out,
                 const float* bias, bool relu, std::int64_t out, std::int64_t begin,
                 std::int64_t end, float* y) {
  for (std::int64_t column = begin; column < end; column += kTile) {
    const std::int64_t vectors = std::min(kTileVectors, (end - column) / kLanes);
    const auto tile = [&](float* to) {
      row_tail(vectors, x, in, weight_t + column, padded_out, bias + column, relu, to,
               std::make_integer_sequence<std::int64_t, kTileVectors>{});
    };
    if (column + vectors * kLanes <= out) {
      tile(y + column);
      continue;
    }
    float last[kTile];
    tile(last);
    std::copy(last, last + (out - column), y + column);
  }
}

// From this many weights on (1 MB, a core's L2 on the machines measured), one example's pass
// over a layer is shared out over the kernel thread pool by output columns: each core then
// streams half the weights, which stay in its L2 from one call to the next. Measured on a 2-vCPU
// AMD EPYC, back-to-back batch-1 calls: the exported CNN (its 3136 -> 128 layer, 1.6 MB) 129-131
// us against 139-143 unsplit; the seed MLP's 784 -> 128 layer (400 KB) split took 8-9 us a call
// against 4.9 in 2 of 3 runs, so smaller layers stay on the caller.
constexpr std::int64_t kSplitWeights = std::int64_t{1} << 18;

}  // namespace

const char* precision_name(InferencePrecision precision) {
  return precision == InferencePrecision::Int8 ? "int8" : "float32";
}

InferencePrecision precision_from_name(const std::string& name) {
  if (name == "float32") return InferencePrecision::Float32;
  if (name == "int8") return InferencePrecision::Int8;
  throw Error(fmt::format("unknown inference precision \"{}\": expected float32 or int8", name));
}

std::optional<InferencePlan> InferencePlan::compile(const std::shared_ptr<Module>& model,
                                                    InferencePrecision precision) {
  const auto* sequential = dynamic_cast<const Sequential*>(model.get());
  if (sequential == nullptr) return std::nullopt;
  InferencePlan plan;
  plan.precision_ = precision;
  bool any_linear = false;
  // The layers since the last linear one. They run as one Sequential, whose forward fuses batch
  // norm and the ReLU after it, with each convolution and the batch norm and relu after it
  // folded into one (conv_folding.h): fewer passes over the activations.
  std::vector<std::shared_ptr<Module>> others;
  const auto flush_others = [&] {
    if (others.empty()) return;
    plan.steps_.push_back(
        {std::nullopt, std::make_shared<Sequential>(detail::fold_convolutions(others))});
    others.clear();
  };
  for (std::size_t i = 0; i < sequential->size(); ++i) {
    const std::shared_ptr<Module>& layer = sequential->layer(i);
    const auto* linear = dynamic_cast<const Linear*>(layer.get());
    if (linear == nullptr) {
      if (layer->type() == "relu" && others.empty() && !plan.steps_.empty() &&
          plan.steps_.back().linear && !plan.steps_.back().linear->relu_after) {
        plan.steps_.back().linear->relu_after = true;
        continue;
      }
      others.push_back(layer);
      continue;
    }
    flush_others();
    const Tensor& weight = linear->weight();
    if (weight.dtype() != DType::Float32) return std::nullopt;
    const bool in_out = linear->layout() == WeightLayout::InOut;
    FrozenLinear frozen;
    frozen.out = weight.size(in_out ? 1 : 0);
    frozen.in = weight.size(in_out ? 0 : 1);
    frozen.padded_out = (frozen.out + kLanes - 1) / kLanes * kLanes;
    frozen.weight_t.assign(static_cast<std::size_t>(frozen.in * frozen.padded_out), 0.0f);
    frozen.bias.assign(static_cast<std::size_t>(frozen.padded_out), 0.0f);
    const float* w = weight.data<float>();
    for (std::int64_t o = 0; o < frozen.out; ++o)
      for (std::int64_t j = 0; j < frozen.in; ++j)
        frozen.weight_t[j * frozen.padded_out + o] =
            in_out ? w[j * frozen.out + o] : w[o * frozen.in + j];
    if (linear->bias().defined())
      std::copy_n(linear->bias().data<float>(), frozen.out, frozen.bias.begin());
    plan.steps_.push_back({std::move(frozen), nullptr});
    any_linear = true;
  }
  if (!any_linear) return std::nullopt;
  flush_others();
  // Quantized once relu is folded in, since the int8 layer applies it after its scales.
  if (precision == InferencePrecision::Int8)
    for (Step& step : plan.steps_) {
      if (!step.linear) continue;
      FrozenLinear& layer = *step.linear;
      layer.int8 = std::make_shared<const detail::Int8Linear>(
          layer.weight_t.data(), layer.padded_out, layer.bias.data(), layer.in, layer.out,
          layer.relu_after);
      layer.weight_t = {};
    }
  return plan;
}

InferencePlan InferencePlan::require(const std::shared_ptr<Module>& model,
                                     InferencePrecision precision) {
  std::optional<InferencePlan> plan = compile(model, precision);
  if (!plan)
    throw Error(fmt::format(
        "this model ({}) cannot run in {}: it applies to the linear layers of a Sequential with "
        "float32 weights",
        model->type(), precision_name(precision)));
  return std::move(*plan);
}

bool InferencePlan::fold_input_affine(const std::vector<double>& a, const std::vector<double>& b) {
  if (precision_ != InferencePrecision::Float32 || steps_.empty() || a.size() != b.size())
    return false;
  std::size_t first = 0;
  if (!steps_[0].linear) {
    for (std::size_t i = 0; i < steps_[0].other->size(); ++i) {
      const std::string type = steps_[0].other->layer(i)->type();
      if (type != "flatten" && type != "reshape") return false;
    }
    first = 1;
  }
  if (first >= steps_.size() || !steps_[first].linear) return false;
  FrozenLinear& layer = *steps_[first].linear;
  const bool shared = a.size() == 1;
  if (!shared && static_cast<std::int64_t>(a.size()) != layer.in) return false;
  std::vector<double> shift(layer.bias.begin(), layer.bias.end());
  for (std::int64_t j = 0; j < layer.in; ++j) {
    const double aj = a[shared ? 0 : j], bj = b[shared ? 0 : j];
    float* row = layer.weight_t.data() + j * layer.padded_out;
    for (std::int64_t o = 0; o < layer.out; ++o) {
      shift[o] += row[o] * bj;
      row[o] = static_cast<float>(row[o] * aj);
    }
  }
  std::copy(shift.begin(), shift.end(), layer.bias.begin());
  return true;
}

void InferencePlan::run_linear(const FrozenLinear& layer, const float* in, std::int64_t rows,
                               float* out) {
  if (layer.int8) {
    for (std::int64_t r = 0; r < rows; ++r)
      layer.int8->forward_row(in + r * layer.in, out + r * layer.out);
  } else if (rows == 1) {
    const auto columns = [&](std::int64_t begin, std::int64_t end) {
      forward_row(in, layer.in, layer.weight_t.data(), layer.padded_out, layer.bias.data(),
                  layer.relu_after, layer.out, begin * kLanes, end * kLanes, out);
    };
    if (layer.in * layer.padded_out >= kSplitWeights)
      parallel_for(layer.padded_out / kLanes, 1, columns);
    else
      columns(0, layer.padded_out / kLanes);
  } else {
    for (std::int64_t r = 0; r < rows; ++r)
      std::copy_n(layer.bias.data(), layer.out, out + r * layer.out);
    detail::gemm<float>(false, false, rows, layer.out, layer.in, 1.0f, in, layer.in,
                        layer.weight_t.data(), layer.padded_out, 1.0f, out, layer.out);
    if (layer.relu_after)
      for (std::int64_t i = 0; i < rows * layer.out; ++i) out[i] = std::max(out[i], 0.0f);
  }
}

Tensor InferencePlan::forward(const Tensor& input) const {
  NoGradGuard no_grad;
  // Between two linear layers the values stay in this thread's scratch buffers rather than in a
  // tensor of their own: at batch 1 in int8 the tensors' allocations were about a tenth of a call.
  static thread_local std::vector<float> scratch[2];
  Tensor x = input;
  bool in_scratch = false;    // whether the current values are in scratch rather than in x
  const float* in = nullptr;  // the current values (null in scratch for an empty batch)
  Shape shape;                // their shape
  for (std::size_t i = 0; i < steps_.size(); ++i) {
    const Step& step = steps_[i];
    if (!step.linear) {
      x = step.other->forward(x);
      continue;
    }
    const FrozenLinear& layer = *step.linear;
    if (!in_scratch) shape = x.shape();
    const DType dtype = in_scratch ? DType::Float32 : x.dtype();
    if (dtype != DType::Float32 || shape.empty() || shape.back() != layer.in)
      throw Error(
          fmt::format("linear({}->{}): input of shape {} ({}) does not end in {} float32 features",
                      layer.in, layer.out, shape_str(shape), dtype_name(dtype), layer.in));
    if (!in_scratch) in = x.data<float>();
    const std::int64_t rows = shape_numel(shape) / layer.in;
    shape.back() = layer.out;
    if (i + 1 < steps_.size() && steps_[i + 1].linear) {
      std::vector<float>& out = scratch[i % 2];
      out.resize(static_cast<std::size_t>(rows * layer.out));
      run_linear(layer, in, rows, out.data());
      in = out.data();
      in_scratch = true;
    } else {
      Tensor y = Tensor::empty(shape);
      run_linear(layer, in, rows, y.data<float>());
      x = std::move(y);
      in_scratch = false;
    }
  }
  return x;
}

}  // namespace lathe
