// ONNX operators: pooling (MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool). Float 1-D and
// 2-D windows run on lathe's max_pool2d / avg_pool2d; the other cases run generic loops.
#include <algorithm>
#include <array>
#include <limits>
#include <vector>

#include "lathe/ops.h"
#include "src/onnx/import/kernels.h"
#include "src/onnx/import/spatial.h"

namespace lathe::onnx_detail {
namespace {

enum class PoolKind { Max, Average };

struct PoolArgs {
  PoolKind kind;
  bool count_include_pad = false;
  bool column_major = false;  // MaxPool's storage_order for Indices
};

template <class T>
void pool_loop(const PoolArgs& args, const Window& w, std::int64_t planes, const T* x, T* y,
               std::int64_t* indices) {
  const std::int64_t in_plane = shape_numel(w.in), out_plane = shape_numel(w.out);
  const auto taps = kernel_taps(w);
  const auto strides = contiguous_strides(w.in);
  std::vector<std::int64_t> offsets(taps.size()), column(taps.size());
  Ints colstrides(w.rank(), 1);  // column-major strides, for storage_order = 1
  for (std::size_t d = 1; d < w.rank(); ++d) colstrides[d] = colstrides[d - 1] * w.in[d - 1];
  for_each_window(w, [&](std::int64_t at, const Ints& start) {
    std::int64_t inside_padded = 0;
    for (std::size_t t = 0; t < taps.size(); ++t) {
      offsets[t] = tap_offset(w, start, taps[t], strides);
      if (indices && offsets[t] >= 0) column[t] = tap_offset(w, start, taps[t], colstrides);
      bool counted = true;
      for (std::size_t d = 0; d < w.rank(); ++d) {
        const std::int64_t p = start[d] + taps[t][d];
        counted = counted && p >= -w.begin[d] && p < w.in[d] + w.end[d];
      }
      inside_padded += counted;
    }
    for (std::int64_t plane = 0; plane < planes; ++plane) {
      const T* xp = x + plane * in_plane;
      if (args.kind == PoolKind::Max) {
        T best = std::numeric_limits<T>::lowest();
        std::int64_t where = -1;
        for (std::size_t t = 0; t < taps.size(); ++t)
          if (offsets[t] >= 0 && (where < 0 || xp[offsets[t]] > best))
            best = xp[offsets[t]], where = static_cast<std::int64_t>(t);
        y[plane * out_plane + at] = best;
        if (indices)
          indices[plane * out_plane + at] =
              plane * in_plane +
              (where < 0 ? 0
                         : (args.column_major ? column : offsets)[static_cast<std::size_t>(where)]);
      } else {
        double sum = 0;
        std::int64_t count = 0;
        for (std::size_t t = 0; t < taps.size(); ++t)
          if (offsets[t] >= 0) sum += static_cast<double>(xp[offsets[t]]), ++count;
        if (args.count_include_pad) count = inside_padded;
        y[plane * out_plane + at] =
            static_cast<T>(count > 0 ? sum / static_cast<double>(count) : 0);
      }
    }
  });
}

// MaxPool / AveragePool through lathe's 2-D pooling (1-D as an image of height 1): all float
// cases but dilated windows, 3-D windows and MaxPool's Indices output.
bool pool_fits_lathe(const Window& w, const OnnxValue& x, bool indices) {
  return is_float_storage(x) && !indices && w.rank() <= 2 && w.all(w.dilations, 1) &&
         shape_numel(w.out) > 0 && x.shape()[0] * x.shape()[1] > 0;
}

Tensor pool_lathe(const OpContext& ctx, const PoolArgs& args, const Window& w, const Tensor& x) {
  const std::size_t lead = 2 - w.rank();
  // Per image axis: input size, ONNX's pads, and the end padding the windows actually reach
  // (more than pads[end] in ceil mode).
  std::array<std::int64_t, 2> in{1, 1}, begin{0, 0}, end{0, 0}, reach{0, 0};
  Pool2dOptions options;
  options.kernel = {1, 1}, options.stride = {1, 1}, options.padding = {0, 0};
  bool lathe_pads = true;  // symmetric pads of at most half the kernel: lathe pads itself
  for (std::size_t d = 0; d < w.rank(); ++d) {
    const std::size_t a = lead + d;
    in[a] = w.in[d], begin[a] = w.begin[d], end[a] = w.end[d];
    options.kernel[a] = w.kernel[d], options.stride[a] = w.strides[d];
    reach[a] = std::max<std::int64_t>(
        0, (w.out[d] - 1) * w.strides[d] + w.kernel[d] - w.in[d] - w.begin[d]);
    lathe_pads = lathe_pads && begin[a] == reach[a] && 2 * begin[a] <= w.kernel[d];
    // count_include_pad = 1 with windows past pads[end] (ceil mode): the mask below must see
    // the padding.
    if (args.count_include_pad && reach[a] > end[a]) lathe_pads = false;
  }
  Tensor x4 = reshape(x, {x.size(0), x.size(1), in[0], in[1]});
  const double fill = args.kind == PoolKind::Max ? -std::numeric_limits<double>::infinity() : 0.0;
  if (lathe_pads)
    options.padding = begin;
  else
    for (std::size_t a = 0; a < 2; ++a)
      x4 = pad_with(ctx, x4, static_cast<std::int64_t>(a) + 2, begin[a], reach[a], fill);
  Shape out{x.size(0), x.size(1)};
  out.insert(out.end(), w.out.begin(), w.out.end());
  if (args.kind == PoolKind::Max) return reshape(max_pool2d(x4, options), out);
  Tensor y = avg_pool2d(x4, options);
  // avg_pool2d divides by the kernel's area; ONNX by the count of window positions inside the
  // input (count_include_pad = 0) or inside the padded input (= 1). Where those differ, divide
  // again by the mean of a mask of the counted positions.
  bool exact = true;
  for (std::size_t a = 0; a < 2; ++a)
    exact = exact && (args.count_include_pad ? reach[a] <= end[a] : begin[a] == 0 && reach[a] == 0);
  if (!exact) {
    const std::int64_t shift0 = lathe_pads ? 0 : begin[0], shift1 = lathe_pads ? 0 : begin[1];
    const std::int64_t h = x4.size(2), wd = x4.size(3);
    std::vector<double> m(static_cast<std::size_t>(h * wd));
    const auto counted = [&](std::int64_t q, std::size_t a) {
      return args.count_include_pad ? q >= -begin[a] && q < in[a] + end[a] : q >= 0 && q < in[a];
    };
    for (std::int64_t i = 0; i < h; ++i)
      for (std::int64_t j = 0; j < wd; ++j)
        m[static_cast<std::size_t>(i * wd + j)] = counted(i - shift0, 0) && counted(j - shift1, 1);
    y = div(y, avg_pool2d(Tensor::from_vector(m, {1, 1, h, wd}, x.dtype()), options));
  }
  return reshape(y, out);
}

std::vector<OnnxValue> pool_op(const OpContext& ctx, PoolKind kind) {
  const OnnxValue& x = ctx.input(0);
  require_rank(ctx, x, 3, "X");
  const std::size_t rank = x.shape().size() - 2;
  const Ints kernel = ctx.attr_ints("kernel_shape", {});
  if (kernel.size() != rank)
    ctx.fail(fmt::format("kernel_shape has {} values, expected {} for X {}", kernel.size(), rank,
                         shape_str(x.shape())));
  PoolArgs args{kind};
  args.count_include_pad = ctx.attr_int("count_include_pad", 0) != 0;
  args.column_major = ctx.attr_int("storage_order", 0) != 0;
  const Window w = make_window(ctx, x.shape(), kernel, ctx.attr_int("ceil_mode", 0) != 0);
  for (std::size_t d = 0; d < rank; ++d)
    if (w.begin[d] >= w.extent(d) || w.end[d] >= w.extent(d))
      ctx.fail(fmt::format("pads ({}, {}) on axis {} must be smaller than the window ({})",
                           w.begin[d], w.end[d], d + 2, w.extent(d)));
  const Shape out = window_output_shape(x.shape(), x.shape()[1], w);
  ctx.check_size(out, x.type);
  const bool indices = kind == PoolKind::Max && wants_output(ctx, 1);
  if (pool_fits_lathe(w, x, indices))
    return {make_value(pool_lathe(ctx, args, w, x.tensor), x.type)};
  if (kind == PoolKind::Average) require_float(ctx, x, "X");
  Tensor y = new_tensor(ctx, out, x.type);
  Tensor where = indices ? new_tensor(ctx, out, OnnxType::Int64) : Tensor();
  visit_storage(y, [&](auto tag) {
    using T = decltype(tag);
    pool_loop<T>(args, w, x.shape()[0] * x.shape()[1], x.tensor.data<T>(), y.data<T>(),
                 indices ? where.data<std::int64_t>() : nullptr);
  });
  std::vector<OnnxValue> result{make_value(y, x.type)};
  if (indices) result.push_back(make_value(where, OnnxType::Int64));
  return result;
}

std::vector<OnnxValue> global_pool_op(const OpContext& ctx, PoolKind kind) {
  const OnnxValue& x = ctx.input(0);
  require_float(ctx, x, "X");
  require_rank(ctx, x, 2, "X");
  const Shape& s = x.shape();
  if (s.size() == 2) return {x};
  const std::int64_t area = shape_numel(tail(s, 2));
  if (area == 0) ctx.fail(fmt::format("X {} has no spatial values to pool", shape_str(s)));
  Shape out{s[0], s[1]};
  out.resize(s.size(), 1);
  Tensor flat = reshape(x.tensor, {s[0], s[1], area});
  Tensor y = kind == PoolKind::Max ? max(flat, 2, true) : mean(flat, {2}, true);
  return {make_value(reshape(y, out), x.type)};
}

}  // namespace

void add_pool_ops(OpTable& table) {
  table["MaxPool"] = {[](const OpContext& ctx) { return pool_op(ctx, PoolKind::Max); }, 1};
  table["AveragePool"] = {[](const OpContext& ctx) { return pool_op(ctx, PoolKind::Average); }, 1};
  table["GlobalAveragePool"] = {
      [](const OpContext& ctx) { return global_pool_op(ctx, PoolKind::Average); }, 1};
  table["GlobalMaxPool"] = {[](const OpContext& ctx) { return global_pool_op(ctx, PoolKind::Max); },
                            1};
}

}  // namespace lathe::onnx_detail
