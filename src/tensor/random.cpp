#include "lathe/random.h"

#include <fmt/format.h>

#include <bit>
#include <cmath>
#include <numbers>

#include "lathe/error.h"
#include "src/tensor/dispatch.h"

namespace lathe {
namespace {

std::uint64_t splitmix64(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::uint64_t rotl(std::uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

template <class F>
void fill_with(Tensor& tensor, const char* op, F&& next) {
  detail::dispatch_floating(tensor.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    T* out = tensor.data<T>();
    const auto n = tensor.numel();
    for (std::int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(next());
  });
}

std::int64_t receptive_field(const Shape& shape) {
  std::int64_t r = 1;
  for (std::size_t i = 2; i < shape.size(); ++i) r *= shape[i];
  return r;
}

void require_fans(const Shape& shape, const char* op) {
  if (shape.size() < 2)
    throw Error(
        fmt::format("{}: needs a weight with at least 2 axes, got shape {}", op, shape_str(shape)));
}

double kaiming_gain(double negative_slope) {
  return std::sqrt(2.0 / (1.0 + negative_slope * negative_slope));
}

}  // namespace

void Generator::seed_with(std::uint64_t seed) {
  std::uint64_t x = seed;
  for (auto& word : state_.s) word = splitmix64(x);
  state_.has_spare = false;
  state_.spare_normal = 0;
}

std::uint64_t Generator::next_u64() {
  auto& s = state_.s;
  const std::uint64_t result = rotl(s[1] * 5, 7) * 9;
  const std::uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

double Generator::uniform() {
  return static_cast<double>(next_u64() >> 11) * 0x1.0p-53;
}

double Generator::normal() {
  if (state_.has_spare) {
    state_.has_spare = false;
    return state_.spare_normal;
  }
  // Box-Muller; 1 - uniform() is in (0, 1], so the log is finite.
  const double u1 = 1.0 - uniform();
  const double u2 = uniform();
  const double radius = std::sqrt(-2.0 * std::log(u1));
  const double angle = 2.0 * std::numbers::pi * u2;
  state_.spare_normal = radius * std::sin(angle);
  state_.has_spare = true;
  return radius * std::cos(angle);
}

std::uint64_t Generator::below(std::uint64_t bound) {
  if (bound == 0) throw Error("random below: bound must be positive");
  // Rejection sampling removes the modulo bias.
  const std::uint64_t limit = ~std::uint64_t{0} - (~std::uint64_t{0} % bound);
  std::uint64_t x;
  do x = next_u64();
  while (x >= limit);
  return x % bound;
}

namespace {

Generator& process_generator() {
  static Generator generator;
  return generator;
}

thread_local Generator* t_scoped_generator = nullptr;

}  // namespace

Generator& default_generator() {
  return t_scoped_generator ? *t_scoped_generator : process_generator();
}

void manual_seed(std::uint64_t seed) {
  process_generator().seed_with(seed);
}

DefaultGeneratorScope::DefaultGeneratorScope(Generator& generator) : previous_(t_scoped_generator) {
  t_scoped_generator = &generator;
}

DefaultGeneratorScope::~DefaultGeneratorScope() {
  t_scoped_generator = previous_;
}

void uniform_(Tensor& tensor, double low, double high, Generator& generator) {
  if (!(low <= high))
    throw Error(fmt::format("uniform_: low {} must not exceed high {}", low, high));
  fill_with(tensor, "uniform_", [&] { return low + (high - low) * generator.uniform(); });
}

void normal_(Tensor& tensor, double mean, double std, Generator& generator) {
  if (!(std >= 0)) throw Error(fmt::format("normal_: std {} must be non-negative", std));
  fill_with(tensor, "normal_", [&] { return mean + std * generator.normal(); });
}

std::int64_t fan_in(const Shape& shape) {
  require_fans(shape, "fan_in");
  return shape[1] * receptive_field(shape);
}

std::int64_t fan_out(const Shape& shape) {
  require_fans(shape, "fan_out");
  return shape[0] * receptive_field(shape);
}

void kaiming_uniform_(Tensor& tensor, Generator& generator, double negative_slope) {
  const double bound =
      kaiming_gain(negative_slope) * std::sqrt(3.0 / static_cast<double>(fan_in(tensor.shape())));
  uniform_(tensor, -bound, bound, generator);
}

void kaiming_normal_(Tensor& tensor, Generator& generator, double negative_slope) {
  const double std =
      kaiming_gain(negative_slope) / std::sqrt(static_cast<double>(fan_in(tensor.shape())));
  normal_(tensor, 0.0, std, generator);
}

void xavier_uniform_(Tensor& tensor, Generator& generator, double gain) {
  const double fans = static_cast<double>(fan_in(tensor.shape()) + fan_out(tensor.shape()));
  const double bound = gain * std::sqrt(6.0 / fans);
  uniform_(tensor, -bound, bound, generator);
}

void xavier_normal_(Tensor& tensor, Generator& generator, double gain) {
  const double fans = static_cast<double>(fan_in(tensor.shape()) + fan_out(tensor.shape()));
  normal_(tensor, 0.0, gain * std::sqrt(2.0 / fans), generator);
}

nlohmann::json Generator::state_json() const {
  return {{"s", {state_.s[0], state_.s[1], state_.s[2], state_.s[3]}},
          {"spare_normal_bits", std::bit_cast<std::uint64_t>(state_.spare_normal)},
          {"has_spare", state_.has_spare}};
}

void Generator::set_state_json(const nlohmann::json& j) {
  State state{};
  for (int i = 0; i < 4; ++i) state.s[i] = j.at("s").at(i).get<std::uint64_t>();
  state.spare_normal = std::bit_cast<double>(j.at("spare_normal_bits").get<std::uint64_t>());
  state.has_spare = j.at("has_spare").get<bool>();
  state_ = state;
}

}  // namespace lathe
