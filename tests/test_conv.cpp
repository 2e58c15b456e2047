// Convolution, pooling and batch norm: forward values against PyTorch 1.13
// (tests/fixtures/conv_reference.json, written by tools/conv_reference.py), the image layers, and
// their errors. Gradients are checked in tests/test_gradcheck.cpp.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "lathe/lathe.h"
#include "src/ops/frozen_conv.h"
#include "tests/test_support.h"

namespace lathe {
namespace {

using nlohmann::json;
using testing::error_of;

json reference_cases() {
  std::ifstream in(LATHE_SOURCE_DIR "/tests/fixtures/conv_reference.json");
  EXPECT_TRUE(in) << "missing tests/fixtures/conv_reference.json";
  return json::parse(in)["cases"];
}

Tensor tensor_of(const json& t) {
  return Tensor::from_vector(t["values"].get<std::vector<double>>(), t["shape"].get<Shape>(),
                             DType::Float64);
}

std::array<std::int64_t, 2> pair(const json& v) {
  return {v[0].get<std::int64_t>(), v[1].get<std::int64_t>()};
}

void expect_reference_values(const std::vector<double>& actual, const std::vector<double>& expected,
                             const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (std::size_t i = 0; i < actual.size(); ++i)
    EXPECT_NEAR(actual[i], expected[i], 1e-10 * (1 + std::abs(expected[i])))
        << what << " element " << i;
}

TEST(ConvReference, ForwardMatchesPyTorch) {
  const json cases = reference_cases();
  ASSERT_EQ(cases.size(), 12u);
  for (const json& c : cases) {
    const std::string op = c["op"];
    const json& in = c["inputs"];
    const json& p = c["params"];
    const Tensor x = tensor_of(in["input"]);
    Tensor out;
    if (op == "conv2d") {
      out = conv2d(x, tensor_of(in["weight"]), tensor_of(in["bias"]),
                   {pair(p["stride"]), pair(p["padding"]), pair(p["dilation"]), p["groups"]});
    } else if (op == "max_pool2d" || op == "avg_pool2d") {
      const Pool2dOptions options{pair(p["kernel"]), pair(p["stride"]), pair(p["padding"])};
      out = op == "max_pool2d" ? max_pool2d(x, options) : avg_pool2d(x, options);
    } else {
      const bool training = p["training"];
      const Tensor running_mean =
          training ? Tensor::zeros({3}, DType::Float64) : tensor_of(in["running_mean"]);
      const Tensor running_var =
          training ? Tensor::ones({3}, DType::Float64) : tensor_of(in["running_var"]);
      out = batch_norm(x, running_mean, running_var, tensor_of(in["weight"]), tensor_of(in["bias"]),
                       training, p["momentum"], p["eps"]);
      if (training) {
        expect_reference_values(running_mean.to_vector(), c["running_mean_after"], "running_mean");
        expect_reference_values(running_var.to_vector(), c["running_var_after"], "running_var");
      }
    }
    EXPECT_EQ(out.shape(), c["output"]["shape"].get<Shape>()) << c["name"];
    expect_reference_values(out.to_vector(), c["output"]["values"], c["name"]);
  }
}

TEST(Conv2d, Float32MatchesFloat64) {
  Generator g(1);
  const Tensor x = Tensor::randn({3, 4, 9, 8}, g, DType::Float64);
  const Tensor w = Tensor::randn({6, 2, 3, 3}, g, DType::Float64);
  const Conv2dOptions options{{2, 1}, {1, 1}, {1, 2}, 2};
  const std::vector<double> exact = conv2d(x, w, Tensor(), options).to_vector();
  const std::vector<double> single =
      conv2d(x.to(DType::Float32), w.to(DType::Float32), Tensor(), options).to_vector();
  for (std::size_t i = 0; i < exact.size(); ++i) EXPECT_NEAR(single[i], exact[i], 1e-4);
}

// float32 3x3 stride-1 convolutions with 8 or more channels run Winograd's F(2x2, 3x3)
// (src/ops/conv_winograd.cpp); float64 runs im2col. Values and all three gradients must agree:
// odd output sizes (partial tiles), padding 0, 1, 2 and uneven, more images than one block, one
// image (split over the pool), and rows of more tiles than one vector holds.
TEST(Conv2d, WinogradFloat32MatchesIm2colFloat64) {
  struct Case {
    Shape input, weight;
    std::array<std::int64_t, 2> padding;
  };
  for (const Case& c :
       {Case{{7, 8, 14, 14}, {16, 8, 3, 3}, {1, 1}}, Case{{3, 9, 7, 7}, {10, 9, 3, 3}, {1, 1}},
        Case{{2, 8, 6, 9}, {8, 8, 3, 3}, {0, 0}}, Case{{2, 12, 5, 4}, {9, 12, 3, 3}, {2, 1}},
        Case{{1, 8, 3, 3}, {8, 8, 3, 3}, {0, 1}},
        Case{{2, 8, 6, 37}, {8, 8, 3, 3}, {1, 1}}}) {  // 19 tiles a row: three vectors
    Generator g(5);
    const Tensor x = Tensor::randn(c.input, g, DType::Float64).requires_grad_();
    const Tensor w = Tensor::randn(c.weight, g, DType::Float64).requires_grad_();
    const Tensor b = Tensor::randn({c.weight[0]}, g, DType::Float64).requires_grad_();
    const Tensor x32 = x.detach().to(DType::Float32).requires_grad_();
    const Tensor w32 = w.detach().to(DType::Float32).requires_grad_();
    const Tensor b32 = b.detach().to(DType::Float32).requires_grad_();
    const Conv2dOptions options{{1, 1}, c.padding, {1, 1}, 1};
    const Tensor exact = conv2d(x, w, b, options), single = conv2d(x32, w32, b32, options);
    ASSERT_EQ(exact.shape(), single.shape());
    const Tensor upstream = Tensor::randn(exact.shape(), g, DType::Float64);
    exact.backward(upstream);
    {
      // The input gradient's storage comes uninitialized from the cache (Winograd writes every
      // pixel): left full of NaN here, a pixel it missed would show.
      std::vector<Tensor> poisoned;
      for (int i = 0; i < 4; ++i) poisoned.push_back(Tensor::full({x32.numel()}, std::nan("")));
    }
    single.backward(upstream.to(DType::Float32));
    const auto expect_close = [&](const Tensor& a, const Tensor& e, double tolerance,
                                  const char* what) {
      const std::vector<double> av = a.to_vector(), ev = e.to_vector();
      ASSERT_EQ(av.size(), ev.size()) << what;
      // Rounding grows with the terms summed, not with their (cancelling) sum: relative to the
      // values' root mean square.
      double squares = 0;
      for (double v : ev) squares += v * v;
      const double scale = 1 + std::sqrt(squares / static_cast<double>(ev.size()));
      for (std::size_t i = 0; i < av.size(); ++i)
        ASSERT_NEAR(av[i], ev[i], tolerance * scale)
            << what << " element " << i << " of " << shape_str(c.input);
    };
    expect_close(single, exact, 1e-5, "output");
    expect_close(x32.grad(), x.grad(), 1e-5, "input gradient");
    expect_close(w32.grad(), w.grad(), 1e-5, "weight gradient");
    expect_close(b32.grad(), b.grad(), 1e-5, "bias gradient");
  }
}

// The inference plan's frozen convolutions apply relu and a 2x2 max pool as they write their
// outputs: Winograd's (8 channels) exactly as conv2d_relu then max_pool2d (the same products,
// the same maximum), the direct one-channel kernel within float rounding (its sums run in
// another order than im2col's product). Even and odd output sizes (an odd last row or column is
// left out of every window), padding 0 and 1, pooled rows narrower and wider than a vector, one
// image (Winograd shares it out) and several, and a NaN in the image (relu makes it 0 before the
// pool sees it). Without a whole window, the pool's own error.
TEST(FrozenConv2d, ReluAndPoolAppliedAsItWritesEqualTheLayersApart) {
  struct Case {
    Shape input;
    std::int64_t padding;
  };
  for (const std::int64_t channels : {1, 8}) {
    for (const Case& c : {Case{{1, channels, 28, 28}, 1}, Case{{3, channels, 7, 9}, 1},
                          Case{{2, channels, 6, 5}, 0}, Case{{1, channels, 4, 69}, 1},
                          Case{{1, channels, 4, 4}, 0}}) {
      Generator g(8);
      std::vector<double> pixels = Tensor::randn(c.input, g).to_vector();
      pixels[pixels.size() / 3] = std::nan("");
      const Tensor x = Tensor::from_vector(pixels, c.input);
      const Tensor w = Tensor::randn({16, channels, 3, 3}, g);
      const Tensor b = Tensor::randn({16}, g);
      const Conv2dOptions options{{1, 1}, {c.padding, c.padding}, {1, 1}, 1};
      NoGradGuard no_grad;
      const Tensor apart = max_pool2d(conv2d_relu(x, w, b, options), Pool2dOptions{});
      const Tensor fused = detail::FrozenConv2d(w, b, options, {true, true}).forward(x);
      ASSERT_EQ(fused.shape(), apart.shape()) << shape_str(c.input);
      const std::vector<double> f = fused.to_vector(), a = apart.to_vector();
      if (channels > 1) {
        EXPECT_EQ(f, a) << shape_str(c.input);
      }
      for (std::size_t i = 0; i < f.size(); ++i)
        ASSERT_NEAR(f[i], a[i], 1e-5 * (1 + std::abs(a[i])))
            << "element " << i << " of " << shape_str(c.input);
      const detail::FrozenConv2d relu_only(w, b, options, {true, false});
      EXPECT_EQ(relu_only.forward(x).to_vector(), conv2d_relu(x, w, b, options).to_vector())
          << shape_str(c.input);
    }
  }
  Generator g(9);
  const Tensor w = Tensor::randn({8, 8, 3, 3}, g);
  EXPECT_EQ(
      error_of([&] {
        detail::FrozenConv2d(w, Tensor(), {}, {true, true}).forward(Tensor::zeros({1, 8, 3, 5}));
      }),
      "max_pool2d: input [1,8,1,3] is smaller than the 2x2 window");
  EXPECT_EQ(error_of([&] {
              detail::FrozenConv2d(w, Tensor(), {}, {false, true});
            }),
            "internal: a frozen convolution pools only after relu");
}

// Winograd's buffers are scratch from the storage cache, kLanes values longer per stream than
// the tiles, and a tile row's last vector reads into that slack: whatever the slack held (here
// NaN, left in the cache on purpose) must not reach the input gradient.
TEST(Conv2d, WinogradInputGradientIgnoresStaleScratch) {
  Generator g(11);
  const Tensor x = Tensor::randn({1, 8, 14, 14}, g).requires_grad_();
  const Tensor w = Tensor::randn({16, 8, 3, 3}, g);
  const Tensor y = conv2d(x, w, Tensor(), {{1, 1}, {1, 1}, {1, 1}, 1});
  {
    // V's buffer: 16 points x 8 channels x (49 tiles + 8), returned to the cache full of NaN.
    std::vector<Tensor> poisoned;
    for (int i = 0; i < 4; ++i) poisoned.push_back(Tensor::full({16 * 8 * 57}, std::nan("")));
  }
  y.backward(Tensor::ones(y.shape()));
  const Tensor x64 = x.detach().to(DType::Float64).requires_grad_();
  const Tensor y64 = conv2d(x64, w.to(DType::Float64), Tensor(), {{1, 1}, {1, 1}, {1, 1}, 1});
  y64.backward(Tensor::ones(y64.shape(), DType::Float64));
  const std::vector<double> dx = x.grad().to_vector(), exact = x64.grad().to_vector();
  for (std::size_t i = 0; i < dx.size(); ++i) ASSERT_NEAR(dx[i], exact[i], 1e-4) << "element " << i;
}

// conv2d_relu applies the relu as each image's output is written, on both paths (im2col for one
// input channel, Winograd for 8); with gradients recorded it is conv2d then relu.
TEST(Conv2d, ReluFusedEqualsReluOfConv) {
  for (const std::int64_t channels : {1, 8}) {
    Generator g(9);
    const Tensor x = Tensor::randn({3, channels, 7, 6}, g);
    const Tensor w = Tensor::randn({8, channels, 3, 3}, g);
    const Tensor b = Tensor::randn({8}, g);
    const Conv2dOptions options{{1, 1}, {1, 1}, {1, 1}, 1};
    {
      NoGradGuard no_grad;
      const std::vector<double> fused = conv2d_relu(x, w, b, options).to_vector();
      const std::vector<double> apart = relu(conv2d(x, w, b, options)).to_vector();
      ASSERT_EQ(fused, apart) << channels << " channels";
      EXPECT_TRUE(std::any_of(fused.begin(), fused.end(), [](double v) { return v == 0; }));
    }
    const Tensor wg = w.detach().clone().requires_grad_();
    sum(conv2d_relu(x, wg, b, options)).backward();
    const Tensor wr = w.detach().clone().requires_grad_();
    sum(relu(conv2d(x, wr, b, options))).backward();
    EXPECT_EQ(wg.grad().to_vector(), wr.grad().to_vector()) << channels << " channels";
  }
}

// A convolution whose output is as wide as its input (stride 1, "same" padding) runs conv.cpp's
// same-width path; the same product on an input padded by hand with zeros (padding 0, so the
// output is narrower than the input) runs the general one. Values and gradients must agree.
TEST(Conv2d, SameWidthPathMatchesExplicitPadding) {
  struct Case {
    Shape input, weight;
    std::array<std::int64_t, 2> padding, dilation;
    std::int64_t groups;
  };
  for (const Case& c : {Case{{3, 4, 7, 9}, {6, 4, 3, 3}, {1, 1}, {1, 1}, 1},
                        Case{{2, 2, 3, 2}, {3, 2, 5, 5}, {2, 2}, {1, 1}, 1},
                        Case{{2, 4, 6, 8}, {4, 2, 3, 3}, {2, 2}, {2, 2}, 2}}) {
    Generator g(3);
    const Tensor x = Tensor::randn(c.input, g, DType::Float64).requires_grad_();
    const Tensor w = Tensor::randn(c.weight, g, DType::Float64).requires_grad_();
    const auto [n, ch, h, width] = std::array{c.input[0], c.input[1], c.input[2], c.input[3]};
    const std::int64_t ph = c.padding[0], pw = c.padding[1];
    const Shape padded_shape{n, ch, h + 2 * ph, width + 2 * pw};
    std::vector<double> padded(static_cast<std::size_t>(n * ch * (h + 2 * ph) * (width + 2 * pw)));
    const std::vector<double> xs = x.to_vector();
    for (std::int64_t plane = 0; plane < n * ch; ++plane)
      for (std::int64_t y = 0; y < h; ++y)
        for (std::int64_t col = 0; col < width; ++col)
          padded[static_cast<std::size_t>((plane * (h + 2 * ph) + y + ph) * (width + 2 * pw) + col +
                                          pw)] =
              xs[static_cast<std::size_t>((plane * h + y) * width + col)];
    const Tensor xp = Tensor::from_vector(padded, padded_shape, DType::Float64);
    const Tensor wp = w.detach().clone().requires_grad_();
    const Tensor same = conv2d(x, w, Tensor(), {{1, 1}, c.padding, c.dilation, c.groups});
    const Tensor general = conv2d(xp, wp, Tensor(), {{1, 1}, {0, 0}, c.dilation, c.groups});
    ASSERT_EQ(same.shape(), general.shape());
    ASSERT_EQ(same.size(3), width);
    const std::vector<double> a = same.to_vector(), b = general.to_vector();
    for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-12) << i;
    const Tensor upstream = Tensor::randn(same.shape(), g, DType::Float64);
    same.backward(upstream);
    general.backward(upstream);
    const std::vector<double> dw = w.grad().to_vector(), dwp = wp.grad().to_vector();
    for (std::size_t i = 0; i < dw.size(); ++i) EXPECT_NEAR(dw[i], dwp[i], 1e-11) << i;
  }
}

TEST(Conv2d, ErrorsNameTheProblem) {
  const Tensor x = Tensor::zeros({1, 4, 5, 5});
  EXPECT_EQ(error_of([&] {
              conv2d(x, Tensor::zeros({2, 3, 3, 3}));
            }),
            "conv2d: weight [2,3,3,3] expects 3 input channels per group, input [1,4,5,5] has 4 "
            "(groups = 1)");
  EXPECT_EQ(error_of([&] {
              conv2d(x, Tensor::zeros({3, 2, 3, 3}), Tensor(), {.groups = 2});
            }),
            "conv2d: groups = 2 must divide the 4 input and 3 output channels");
  EXPECT_EQ(error_of([&] {
              conv2d(x, Tensor::zeros({2, 4, 7, 7}));
            }),
            "conv2d: input [1,4,5,5] is smaller than the 7x7 kernel (dilation 1, padding 0)");
  EXPECT_EQ(error_of([&] {
              conv2d(Tensor::zeros({1, 4, 6, 6}), Tensor::zeros({2, 4, 7, 7}), Tensor(),
                     {.stride = {2, 2}});
            }),
            "conv2d: input [1,4,6,6] is smaller than the 7x7 kernel (dilation 1, padding 0)");
  EXPECT_EQ(error_of([&] {
              conv2d(x, Tensor::zeros({2, 4, 3, 3}), Tensor(), {.stride = {0, 1}});
            }),
            "conv2d: stride must be at least 1, got (0, 1)");
  EXPECT_EQ(
      error_of([&] {
        conv2d(Tensor::zeros({4, 5, 5}), Tensor::zeros({2, 4, 3, 3}));
      }),
      "conv2d: input [4,5,5] and weight [2,4,3,3]: expected [N,C,H,W] and [O,C/groups,KH,KW]");
  EXPECT_EQ(error_of([&] {
              conv2d(x, Tensor::zeros({2, 4, 3, 3}), Tensor::zeros({3}));
            }),
            "conv2d: bias [3] does not match 2 output channels");
}

// Float32's 2x2 pool has a vector form (where the CPU has one); float64 runs the scalar chain.
// Both must pick the same element of every window: the first maximum, or the first NaN. Values
// are small integers, so ties are common, and widths cover partial vectors, whole ones, both, and
// an odd width (its last column is outside every window).
TEST(MaxPool2d, Float32TwoByTwoPicksWhatTheScalarFormPicks) {
  Generator g(5);
  for (const std::int64_t width : {2, 14, 28, 32, 33, 50, 80}) {
    const Shape shape{2, 3, 6, width};
    std::vector<double> values = Tensor::randn(shape, g, DType::Float64).to_vector();
    for (std::size_t i = 0; i < values.size(); ++i) {
      values[i] = std::round(values[i] * 1.5);
      if (i % 37 == 5 || i % 53 == 0) values[i] = std::nan("");
    }
    const Tensor exact = Tensor::from_vector(values, shape, DType::Float64).requires_grad_();
    const Tensor single = exact.detach().to(DType::Float32).requires_grad_();
    const Pool2dOptions options{{2, 2}, {2, 2}, {0, 0}};
    const Tensor exact_out = max_pool2d(exact, options), single_out = max_pool2d(single, options);
    const std::vector<double> a = exact_out.to_vector(), b = single_out.to_vector();
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      if (std::isnan(a[i]))
        EXPECT_TRUE(std::isnan(b[i])) << "width " << width << " output " << i;
      else
        EXPECT_EQ(a[i], b[i]) << "width " << width << " output " << i;
    }
    // Without a backward pass (inference) the pool writes no positions; the maxima are the same.
    const std::vector<double> inferred = max_pool2d(single.detach(), options).to_vector();
    for (std::size_t i = 0; i < b.size(); ++i) {
      if (std::isnan(b[i]))
        EXPECT_TRUE(std::isnan(inferred[i])) << "width " << width << " output " << i;
      else
        EXPECT_EQ(inferred[i], b[i]) << "width " << width << " output " << i;
    }
    // Distinct upstream values show, in the input gradient, which element each window chose.
    std::vector<double> upstream(a.size());
    for (std::size_t i = 0; i < upstream.size(); ++i) upstream[i] = static_cast<double>(i + 1);
    exact_out.backward(Tensor::from_vector(upstream, exact_out.shape(), DType::Float64));
    single_out.backward(Tensor::from_vector(upstream, single_out.shape(), DType::Float32));
    EXPECT_EQ(exact.grad().to_vector(), single.grad().to_vector()) << "width " << width;
  }
}

// The pool's backward zeroes each plane of the input gradient just before it scatters into it
// (the storage comes uninitialized): the chosen pixel of each window gets the window's gradient,
// the other three 0, and pixels outside every window (an odd last row or column) 0, whatever the
// storage held before (NaN, left in the cache on purpose). Checked against the windows read
// here, in float32 (the vector forward) and float64 (the scalar one), with ties and NaN among the
// inputs.
TEST(MaxPool2d, BackwardWritesEveryPixel) {
  Generator g(6);
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    for (const Shape& shape : std::vector<Shape>{
             {2, 3, 7, 7}, {1, 2, 6, 40}, {1, 1, 4, 64}, {3, 2, 5, 33}, {1, 1, 2, 2}}) {
      std::vector<double> values = Tensor::randn(shape, g, DType::Float64).to_vector();
      for (std::size_t i = 0; i < values.size(); ++i) {
        values[i] = std::max(0.0, std::round(values[i] * 1.5));  // relu'd: many ties at 0
        if (i % 41 == 7) values[i] = std::nan("");
      }
      const Tensor x = Tensor::from_vector(values, shape, dtype).requires_grad_();
      const Tensor y = max_pool2d(x, {{2, 2}, {2, 2}, {0, 0}});
      std::vector<double> upstream(static_cast<std::size_t>(y.numel()));
      for (std::size_t i = 0; i < upstream.size(); ++i)
        upstream[i] = (i % 2 ? -1.0 : 1.0) * static_cast<double>(i + 1);
      {
        std::vector<Tensor> poisoned;
        for (int i = 0; i < 4; ++i) poisoned.push_back(Tensor::full(shape, std::nan(""), dtype));
      }
      y.backward(Tensor::from_vector(upstream, y.shape(), dtype));
      const std::int64_t h = shape[2], w = shape[3], oh = h / 2, ow = w / 2;
      std::vector<double> expected(values.size(), 0.0);
      for (std::int64_t plane = 0; plane < shape[0] * shape[1]; ++plane)
        for (std::int64_t oy = 0; oy < oh; ++oy)
          for (std::int64_t ox = 0; ox < ow; ++ox) {
            std::int64_t best = -1;
            for (const std::int64_t at :
                 {(2 * oy) * w + 2 * ox, (2 * oy) * w + 2 * ox + 1, (2 * oy + 1) * w + 2 * ox,
                  (2 * oy + 1) * w + 2 * ox + 1}) {
              const double v = values[plane * h * w + at];
              if (best < 0) {
                best = at;
              } else {
                const double kept = values[plane * h * w + best];
                if (!std::isnan(kept) && (std::isnan(v) || v > kept)) best = at;
              }
            }
            expected[plane * h * w + best] = upstream[(plane * oh + oy) * ow + ox];
          }
      EXPECT_EQ(x.grad().to_vector(), expected) << dtype_name(dtype) << " " << shape_str(shape);
    }
  }
}

TEST(Pool2d, ErrorsNameTheProblem) {
  const Tensor x = Tensor::zeros({1, 1, 3, 3});
  EXPECT_EQ(error_of([&] {
              max_pool2d(x, {{4, 4}, {1, 1}, {0, 0}});
            }),
            "max_pool2d: input [1,1,3,3] is smaller than the 4x4 window");
  // One row short of the window, with a stride of 2: no output, not one read past the end.
  EXPECT_EQ(error_of([&] {
              max_pool2d(Tensor::zeros({1, 1, 1, 3}), {});
            }),
            "max_pool2d: input [1,1,1,3] is smaller than the 2x2 window");
  EXPECT_EQ(error_of([&] {
              avg_pool2d(x, {{2, 2}, {1, 1}, {2, 0}});
            }),
            "avg_pool2d: padding (2, 0) must be at most half the kernel (2, 2)");
  EXPECT_EQ(error_of([&] {
              max_pool2d(Tensor::zeros({3, 3}), {});
            }),
            "max_pool2d: input [3,3] is not [N,C,H,W]");
}

TEST(BatchNorm, ErrorsNameTheProblem) {
  EXPECT_EQ(error_of([] {
              batch_norm(Tensor::zeros({1, 3}), Tensor(), Tensor(), Tensor(), Tensor(), true);
            }),
            "batch_norm: training needs more than one value per channel, input [1,3] has 1");
  EXPECT_EQ(error_of([] {
              batch_norm(Tensor::zeros({2, 3}), Tensor(), Tensor(), Tensor(), Tensor(), false);
            }),
            "batch_norm: evaluation needs running_mean and running_var");
  EXPECT_EQ(
      error_of([] {
        batch_norm(Tensor::zeros({2, 3}), Tensor(), Tensor(), Tensor::ones({2}), Tensor(), true);
      }),
      "batch_norm: weight [2] does not match the 3 channels of input [2,3]");
}

TEST(ImageLayers, BuildFromSpecsAndRoundTrip) {
  Generator g(2);
  auto model = make_sequential(json::parse(R"([
    {"type": "reshape", "shape": [1, 8, 8]},
    {"type": "conv2d", "in": 1, "out": 4, "kernel_size": 3, "padding": 1},
    {"type": "batch_norm2d", "features": 4},
    {"type": "relu"},
    {"type": "max_pool2d", "kernel_size": 2},
    {"type": "conv2d", "in": 4, "out": 4, "kernel_size": 3, "groups": 2, "dilation": 2, "padding": 2, "bias": false},
    {"type": "avg_pool2d", "kernel_size": 2, "stride": 1},
    {"type": "global_avg_pool"},
    {"type": "batch_norm1d", "features": 4, "momentum": 0.2},
    {"type": "linear", "in": 4, "out": 3}])"),
                               g);
  std::vector<std::string> buffers;
  for (const auto& [name, t] : model->named_buffers()) buffers.push_back(name);
  EXPECT_EQ(buffers, (std::vector<std::string>{"2.running_mean", "2.running_var", "8.running_mean",
                                               "8.running_var"}));
  const Tensor x = Tensor::randn({5, 8, 8}, g);
  EXPECT_EQ(model->forward(x).shape(), (Shape{5, 3}));
  // Training moved the running statistics away from (0, 1).
  EXPECT_NE(model->state_dict().at("2.running_mean").to_vector(), std::vector<double>(4, 0.0));

  auto copy = make_layer(model->spec(), g);
  EXPECT_EQ(copy->spec(), model->spec());
  copy->load_state_dict(model->state_dict());
  model->eval();
  copy->eval();
  EXPECT_EQ(model->forward(x).to_vector(), copy->forward(x).to_vector());
}

// Sequential runs a batch norm followed by a relu as batch_norm_relu. Its values, gradients and
// running statistics equal the two layers run one after the other (float32, rows of 40 values:
// whole vectors and a tail), in training and in evaluation.
TEST(ImageLayers, BatchNormThenReluFusedEqualsTheTwoLayers) {
  Generator g(4);
  const json specs = json::parse(R"([{"type": "batch_norm2d", "features": 3},
                                     {"type": "relu"}])");
  auto fused = make_sequential(specs, g);
  auto norm = make_layer(specs[0], g);
  auto relu_layer = make_layer(specs[1], g);
  const Tensor weight = Tensor::from_vector({0.5, -1.5, 2.0}, {3});
  for (auto* model : {static_cast<Module*>(fused.get()), norm.get()})
    for (auto& [name, p] : model->named_parameters())
      if (name.ends_with("weight")) p.copy_(weight);
  // The second input sits on the relu's edge: a quarter of each channel at 0.1 +- 0.5 and half
  // at 0.1, about the channel's mean, where the normalized value is a rounding error of either
  // sign. The fused backward recomputes that value to mask the gradient, and must decide every
  // sign as the forward did.
  std::vector<double> edge(4 * 3 * 5 * 8);
  for (std::size_t i = 0; i < edge.size(); ++i)
    edge[i] = 0.1 + (i % 4 == 0 ? -0.5 : i % 4 == 3 ? 0.5 : 0.0);
  for (const auto& [training, on_edge] : {std::pair{true, false}, {false, false}, {true, true}}) {
    fused->train(training);
    norm->train(training);
    const Tensor x =
        (on_edge ? Tensor::from_vector(edge, {4, 3, 5, 8}) : Tensor::randn({4, 3, 5, 8}, g))
            .requires_grad_();
    const Tensor x_copy = x.detach().clone().requires_grad_();
    const Tensor a = fused->forward(x), b = relu_layer->forward(norm->forward(x_copy));
    EXPECT_EQ(a.to_vector(), b.to_vector());
    const Tensor upstream = Tensor::randn(a.shape(), g);
    a.backward(upstream);
    b.backward(upstream);
    EXPECT_EQ(x.grad().to_vector(), x_copy.grad().to_vector()) << "training " << training;
    const auto fused_parameters = fused->named_parameters();
    const auto plain_parameters = norm->named_parameters();
    for (std::size_t i = 0; i < plain_parameters.size(); ++i)
      EXPECT_EQ(fused_parameters[i].tensor.grad().to_vector(),
                plain_parameters[i].tensor.grad().to_vector())
          << plain_parameters[i].name;
    EXPECT_EQ(fused->state_dict().at("0.running_var").to_vector(),
              norm->state_dict().at("running_var").to_vector());
    fused->zero_grad();
    norm->zero_grad();
  }
}

// batch_norm_relu_max_pool2d against batch_norm_relu then max_pool2d, in float32 (the vector
// pool): the same values, running statistics and gradients, bit for bit (the same kernels on the
// same numbers). Odd sizes, pooled rows narrower and wider than a vector, training and
// evaluation, and Sequential's fusion of the three layers.
TEST(BatchNorm, ReluAndMaxPoolFusedEqualTheOpsApart) {
  Generator g(12);
  for (const Shape& shape : std::vector<Shape>{{4, 3, 28, 28}, {2, 5, 7, 9}, {3, 2, 6, 40}}) {
    for (const bool training : {true, false}) {
      const std::int64_t c = shape[1];
      const Tensor w = Tensor::randn({c}, g).requires_grad_(),
                   b = Tensor::randn({c}, g).requires_grad_();
      const Tensor w2 = w.detach().clone().requires_grad_(),
                   b2 = b.detach().clone().requires_grad_();
      const Tensor mean = Tensor::randn({c}, g), var = Tensor::rand({c}, g) + 0.5;
      const Tensor mean2 = mean.clone(), var2 = var.clone();
      const Tensor x = Tensor::randn(shape, g).requires_grad_();
      const Tensor x2 = x.detach().clone().requires_grad_();
      const Tensor fused = batch_norm_relu_max_pool2d(x, mean, var, w, b, training);
      const Tensor apart =
          max_pool2d(batch_norm_relu(x2, mean2, var2, w2, b2, training), Pool2dOptions{});
      const std::string what = shape_str(shape) + (training ? " training" : " eval");
      ASSERT_EQ(fused.shape(), apart.shape()) << what;
      EXPECT_EQ(fused.to_vector(), apart.to_vector()) << what;
      EXPECT_EQ(mean.to_vector(), mean2.to_vector()) << what;
      EXPECT_EQ(var.to_vector(), var2.to_vector()) << what;
      const Tensor upstream = Tensor::randn(fused.shape(), g);
      fused.backward(upstream);
      apart.backward(upstream);
      EXPECT_EQ(x.grad().to_vector(), x2.grad().to_vector()) << what;
      EXPECT_EQ(w.grad().to_vector(), w2.grad().to_vector()) << what;
      EXPECT_EQ(b.grad().to_vector(), b2.grad().to_vector()) << what;
    }
  }
  // Sequential fuses a batch_norm2d, relu, max_pool2d (2x2, stride 2) run (its output's node is
  // the fused op's); a stride-1 pool after them stays a layer of its own. Both give what the
  // layers give one by one.
  for (const int stride : {2, 1}) {
    const json specs = json::parse(fmt::format(
        R"([{{"type": "batch_norm2d", "features": 3}}, {{"type": "relu"}},
            {{"type": "max_pool2d", "kernel_size": 2, "stride": {}}}])",
        stride));
    auto fused = make_sequential(specs, g);
    const Tensor x = Tensor::randn({2, 3, 8, 6}, g).requires_grad_();
    Tensor apart = x;
    for (const json& spec : specs) apart = make_layer(spec, g)->forward(apart);
    const Tensor out = fused->forward(x);
    EXPECT_EQ(out.to_vector(), apart.to_vector()) << "stride " << stride;
    ASSERT_TRUE(out.grad_fn()) << "stride " << stride;
    EXPECT_EQ(out.grad_fn()->op, stride == 2 ? Op::BatchNormReluMaxPool2d : Op::MaxPool2d);
  }
  EXPECT_EQ(error_of([&] {
              batch_norm_relu_max_pool2d(Tensor::zeros({2, 3, 1, 4}), Tensor(), Tensor(), Tensor(),
                                         Tensor(), true);
            }),
            "batch_norm_relu_max_pool2d: input [2,3,1,4] is smaller than the 2x2 window");
  EXPECT_EQ(error_of([&] {
              batch_norm_relu_max_pool2d(Tensor::zeros({2, 3, 4}), Tensor(), Tensor(), Tensor(),
                                         Tensor(), true);
            }),
            "batch_norm_relu_max_pool2d: input [2,3,4] is not [N,C,H,W]");
}

TEST(ImageLayers, EvalUsesRunningStatisticsAndTrainUsesTheBatch) {
  Generator g(3);
  auto bn = make_layer({{"type", "batch_norm1d"}, {"features", 2}}, g);
  const Tensor x = Tensor::from_vector({1, 10, 3, 20}, {2, 2});
  const std::vector<double> train = bn->forward(x).to_vector();
  // Batch statistics: each column becomes (-1, 1) up to eps.
  EXPECT_NEAR(train[0], -1, 1e-4);
  EXPECT_NEAR(train[2], 1, 1e-4);
  bn->eval();
  // Running statistics after one step: mean 0.1 * batch mean, var 0.9 + 0.1 * unbiased var.
  const std::vector<double> eval = bn->forward(x).to_vector();
  EXPECT_NEAR(eval[0], (1 - 0.2) / std::sqrt(0.9 + 0.1 * 2 + 1e-5), 1e-5);
}

TEST(ImageLayers, SpecErrorsNameTheKey) {
  Generator g(4);
  EXPECT_EQ(error_of([&] {
              make_layer({{"type", "reshape"}, {"shape", {1, "a"}}}, g);
            }),
            "layer 'reshape': 'shape' must be a list of integers, got [1,\"a\"]");
  EXPECT_EQ(error_of([&] {
              make_layer({{"type", "conv2d"}, {"in", 1}, {"out", 2}}, g);
            }),
            "layer 'conv2d': missing required key 'kernel_size' (kernel height and width)");
  EXPECT_EQ(error_of([&] {
              make_layer(
                  {{"type", "conv2d"}, {"in", 3}, {"out", 2}, {"kernel_size", 3}, {"groups", 2}},
                  g);
            }),
            "conv2d: groups = 2 must divide in = 3 and out = 2");
  EXPECT_EQ(error_of([&] {
              make_layer({{"type", "max_pool2d"}, {"kernel_size", 2}, {"padding", 2}}, g);
            }),
            "max_pool2d: need kernel_size, stride >= 1 and 0 <= padding <= kernel_size / 2, got "
            "kernel_size=2 stride=2 padding=2");
  EXPECT_EQ(error_of([&] {
              make_layer({{"type", "reshape"}, {"shape", {4294967296LL, 4294967296LL}}}, g);
            }),
            "reshape: shape [4294967296,4294967296] is too large");
  auto reshape = make_layer({{"type", "reshape"}, {"shape", {1, 3, 3}}}, g);
  EXPECT_EQ(error_of([&] {
              reshape->forward(Tensor::zeros({2, 8}));
            }),
            "reshape: input of shape [2,8] does not hold examples of shape [1,3,3]");
}

}  // namespace
}  // namespace lathe
