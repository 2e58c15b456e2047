// ONNX operators: Resize and Upsample (nearest, linear and cubic interpolation), a generic loop
// over one axis at a time computed in double.
#include <algorithm>
#include <cmath>
#include <iterator>
#include <string>
#include <type_traits>
#include <vector>

#include "lathe/ops.h"
#include "src/onnx/import/kernels.h"
#include "src/onnx/import/spatial.h"

namespace lathe::onnx_detail {
namespace {

struct Tap {
  std::int64_t index;
  double weight;
};

struct ResizeArgs {
  std::string mode = "nearest";
  std::string transform = "half_pixel";
  std::string nearest = "round_prefer_floor";  // or "simple" (Upsample, Resize-10)
  double cubic_a = -0.75;
  bool exclude_outside = false;
  double extrapolation = 0;
};

double source_coordinate(const ResizeArgs& r, double x, std::int64_t in, std::int64_t out,
                         double scale, double roi_start, double roi_end) {
  const auto fin = static_cast<double>(in), fout = static_cast<double>(out);
  // align_corners divides by in * scale - 1, as the ONNX reference does: the output length
  // itself unless scales (not sizes) gave a fractional one.
  const double scaled = fin * scale;
  const std::string& t = r.transform;
  if (t == "half_pixel") return (x + 0.5) / scale - 0.5;
  if (t == "pytorch_half_pixel") return out > 1 ? (x + 0.5) / scale - 0.5 : 0;
  if (t == "asymmetric") return x / scale;
  if (t == "tf_half_pixel_for_nearest" || t == "tf_half_pixel_for_nn") return (x + 0.5) / scale;
  if (t == "align_corners") return out > 1 ? x * (fin - 1) / (scaled - 1) : 0;
  // tf_crop_and_resize
  if (out > 1) return roi_start * (fin - 1) + x * (roi_end - roi_start) * (fin - 1) / (fout - 1);
  return 0.5 * (roi_start + roi_end) * (fin - 1);
}

std::int64_t nearest_index(const ResizeArgs& r, double x, double scale) {
  const double f = std::floor(x);
  const double frac = x - f;
  const std::string& m = r.nearest;
  if (m == "simple") return static_cast<std::int64_t>(scale < 1 ? std::ceil(x) : f);
  if (m == "floor") return static_cast<std::int64_t>(f);
  if (m == "ceil") return static_cast<std::int64_t>(std::ceil(x));
  if (frac == 0.5) return static_cast<std::int64_t>(m == "round_prefer_ceil" ? f + 1 : f);
  return static_cast<std::int64_t>(frac < 0.5 ? f : f + 1);
}

// Taps of one output position along one axis; empty for the extrapolation value.
std::vector<Tap> resize_taps(const ResizeArgs& r, double x, std::int64_t in, double scale) {
  const auto clamp = [&](std::int64_t i) { return std::clamp<std::int64_t>(i, 0, in - 1); };
  if (r.mode == "nearest") return {{clamp(nearest_index(r, x, scale)), 1.0}};
  const double f = std::floor(x);
  const double t = x - f;
  const auto base = static_cast<std::int64_t>(f);
  std::vector<Tap> taps;
  if (r.mode == "linear") {
    taps = {{base, 1 - t}, {base + 1, t}};
  } else {
    const double a = r.cubic_a;
    const auto far = [&](double d) { return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a; };
    const auto near = [&](double d) { return ((a + 2) * d - (a + 3)) * d * d + 1; };
    taps = {
        {base - 1, far(t + 1)}, {base, near(t)}, {base + 1, near(1 - t)}, {base + 2, far(2 - t)}};
  }
  if (r.exclude_outside) {
    double total = 0;
    for (auto& tap : taps) {
      if (tap.index < 0 || tap.index >= in) tap.weight = 0;
      total += tap.weight;
    }
    if (total != 0)
      for (auto& tap : taps) tap.weight /= total;
  }
  for (auto& tap : taps) tap.index = clamp(tap.index);
  return taps;
}

// One axis resized: data [outer, in, inner] -> [outer, out, inner].
std::vector<double> resize_axis(const std::vector<double>& data, std::int64_t outer,
                                std::int64_t in, std::int64_t inner,
                                const std::vector<std::vector<Tap>>& taps, double extrapolation) {
  const auto out = static_cast<std::int64_t>(taps.size());
  std::vector<double> result(static_cast<std::size_t>(outer * out * inner));
  for (std::int64_t o = 0; o < outer; ++o)
    for (std::int64_t i = 0; i < out; ++i) {
      double* dst = result.data() + (o * out + i) * inner;
      const auto& ts = taps[static_cast<std::size_t>(i)];
      if (ts.empty()) {
        std::fill_n(dst, inner, extrapolation);
        continue;
      }
      std::fill_n(dst, inner, 0.0);
      for (const Tap& tap : ts) {
        if (tap.weight == 0) continue;
        const double* src = data.data() + (o * in + tap.index) * inner;
        for (std::int64_t k = 0; k < inner; ++k) dst[k] += tap.weight * src[k];
      }
    }
  return result;
}

OnnxValue resize(const OpContext& ctx, const OnnxValue& x, const ResizeArgs& r,
                 const std::vector<double>& scales_in, const Ints& sizes,
                 const std::vector<double>& roi) {
  const Shape& s = x.shape();
  const std::size_t rank = s.size();
  Shape out(rank);
  std::vector<double> scales(rank);
  for (std::size_t d = 0; d < rank; ++d) {
    if (!sizes.empty()) {
      if (sizes[d] < 0) ctx.fail(fmt::format("sizes value {} is negative", sizes[d]));
      out[d] = sizes[d];
      scales[d] = s[d] > 0 ? static_cast<double>(sizes[d]) / static_cast<double>(s[d]) : 1.0;
    } else {
      scales[d] = scales_in[d];
      if (!(scales[d] > 0) || !std::isfinite(scales[d]))
        ctx.fail(fmt::format("scales value {} is not positive", scales[d]));
      double length = static_cast<double>(s[d]) * scales[d];
      if (r.transform == "tf_crop_and_resize") length *= roi[rank + d] - roi[d];
      if (!(length >= 0) || length > 1e15)
        ctx.fail(fmt::format("scales value {} gives an output length out of range", scales[d]));
      out[d] = static_cast<std::int64_t>(std::floor(length));
    }
  }
  ctx.check_size(out, x.type);
  for (std::size_t d = 0; d < rank; ++d)
    if (s[d] == 0 && out[d] > 0) ctx.fail(fmt::format("cannot resize an empty axis {}", d));
  std::vector<double> data(static_cast<std::size_t>(x.tensor.numel()));
  visit_storage(x.tensor, [&](auto tag) {
    using T = decltype(tag);
    const T* p = x.tensor.data<T>();
    for (std::size_t k = 0; k < data.size(); ++k) data[k] = static_cast<double>(p[k]);
  });
  // Innermost axis first: what the reference's nested 1-D interpolation computes.
  Shape current = s;
  for (std::size_t d = rank; d-- > 0;) {
    const bool crop = r.transform == "tf_crop_and_resize";
    const double start = crop ? roi[d] : 0, end = crop ? roi[rank + d] : 1;
    if (out[d] == s[d] && scales[d] == 1 && !crop) continue;
    std::vector<std::vector<Tap>> taps(static_cast<std::size_t>(out[d]));
    for (std::int64_t i = 0; i < out[d]; ++i) {
      const double xo =
          source_coordinate(r, static_cast<double>(i), s[d], out[d], scales[d], start, end);
      if (crop && (xo < 0 || xo > static_cast<double>(s[d] - 1))) continue;
      taps[static_cast<std::size_t>(i)] = resize_taps(r, xo, s[d], scales[d]);
    }
    Shape next = current;
    next[d] = out[d];
    ctx.check_size(next, OnnxType::Double);
    const std::int64_t outer =
        shape_numel(Shape(current.begin(), current.begin() + static_cast<std::ptrdiff_t>(d)));
    data = resize_axis(data, outer, s[d], shape_numel(tail(current, d + 1)), taps, r.extrapolation);
    current = next;
  }
  Tensor y = new_tensor(ctx, out, x.type);
  visit_storage(y, [&](auto tag) {
    using T = decltype(tag);
    T* p = y.data<T>();
    for (std::size_t k = 0; k < data.size(); ++k) {
      if constexpr (std::is_integral_v<T>)
        p[k] = std::isnan(data[k])
                   ? 0
                   : static_cast<T>(std::clamp(std::round(data[k]), -9.2e18, 9.2e18));
      else
        p[k] = static_cast<T>(data[k]);
    }
  });
  return make_value(y, x.type);
}

std::vector<double> float_values(const OpContext& ctx, const OnnxValue& v, const char* what) {
  if (v.shape().size() > 1)
    ctx.fail(fmt::format("{} must be 1-D, got shape {}", what, shape_str(v.shape())));
  std::vector<double> out(static_cast<std::size_t>(v.tensor.numel()));
  visit_storage(v.tensor, [&](auto tag) {
    using T = decltype(tag);
    const T* p = v.tensor.data<T>();
    for (std::size_t k = 0; k < out.size(); ++k) out[k] = static_cast<double>(p[k]);
  });
  return out;
}

void check_resize_mode(const OpContext& ctx, const ResizeArgs& r, bool cubic_allowed) {
  if (r.mode != "nearest" && r.mode != "linear" && !(cubic_allowed && r.mode == "cubic"))
    ctx.fail(fmt::format("unknown mode '{}'", r.mode));
}

std::vector<OnnxValue> resize_op(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  const std::size_t rank = x.shape().size();
  ResizeArgs r;
  r.mode = ctx.attr_string("mode", "nearest");
  if (ctx.has_attr("axes")) ctx.unsupported("the axes attribute is not supported");
  if (ctx.attr_int("antialias", 0) != 0) ctx.unsupported("antialias is not supported");
  if (ctx.attr_string("keep_aspect_ratio_policy", "stretch") != "stretch")
    ctx.unsupported("keep_aspect_ratio_policy other than stretch is not supported");
  std::vector<double> scales, roi;
  Ints sizes;
  if (ctx.opset() < 11) {
    check_resize_mode(ctx, r, false);
    r.transform = "asymmetric", r.nearest = "simple";
    scales = float_values(ctx, ctx.input(1), "scales");
  } else {
    check_resize_mode(ctx, r, true);
    r.transform = ctx.attr_string("coordinate_transformation_mode", "half_pixel");
    r.nearest = ctx.attr_string("nearest_mode", "round_prefer_floor");
    r.cubic_a = ctx.attr_float("cubic_coeff_a", -0.75);
    r.exclude_outside = ctx.attr_int("exclude_outside", 0) != 0;
    r.extrapolation = ctx.attr_float("extrapolation_value", 0.0);
    static const char* transforms[] = {"half_pixel",           "pytorch_half_pixel",
                                       "asymmetric",           "tf_half_pixel_for_nearest",
                                       "tf_half_pixel_for_nn", "align_corners",
                                       "tf_crop_and_resize"};
    if (std::none_of(std::begin(transforms), std::end(transforms),
                     [&](const char* t) { return r.transform == t; }))
      ctx.unsupported(fmt::format("coordinate_transformation_mode '{}'", r.transform));
    static const char* modes[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
    if (std::none_of(std::begin(modes), std::end(modes),
                     [&](const char* m) { return r.nearest == m; }))
      ctx.fail(fmt::format("unknown nearest_mode '{}'", r.nearest));
    if (ctx.has_input(1)) roi = float_values(ctx, ctx.input(1), "roi");
    if (ctx.has_input(2)) scales = float_values(ctx, ctx.input(2), "scales");
    if (ctx.has_input(3)) sizes = int_values(ctx, ctx.input(3), "sizes");
    if (r.transform == "tf_crop_and_resize" && roi.size() != 2 * rank)
      ctx.fail(fmt::format("roi has {} values, expected {}", roi.size(), 2 * rank));
  }
  if (!sizes.empty() && !scales.empty()) ctx.fail("scales and sizes are both given");
  if (sizes.empty() && scales.size() != rank)
    ctx.fail(fmt::format("scales has {} values for X {}", scales.size(), shape_str(x.shape())));
  if (!sizes.empty() && sizes.size() != rank)
    ctx.fail(fmt::format("sizes has {} values for X {}", sizes.size(), shape_str(x.shape())));
  return {resize(ctx, x, r, scales, sizes, roi)};
}

std::vector<OnnxValue> upsample_op(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  ResizeArgs r;
  r.mode = ctx.attr_string("mode", "nearest");
  if (r.mode == "bilinear") r.mode = "linear";
  check_resize_mode(ctx, r, false);
  r.transform = "asymmetric", r.nearest = "simple";
  const std::vector<double> scales =
      ctx.opset() < 9 ? ctx.attr_floats("scales") : float_values(ctx, ctx.input(1), "scales");
  if (scales.size() != x.shape().size())
    ctx.fail(fmt::format("scales has {} values for X {}", scales.size(), shape_str(x.shape())));
  return {resize(ctx, x, r, scales, {}, {})};
}

}  // namespace

void add_resize_ops(OpTable& table) {
  table["Resize"] = {resize_op, 10};
  table["Upsample"] = {upsample_op, 7};
}

}  // namespace lathe::onnx_detail
