#pragma once
// Deterministic, seeded random numbers and the standard weight initializations. The generator is
// xoshiro256** with our own uniform and Box-Muller normal, so a seed gives the same numbers on
// every platform and standard library.
#include <cstdint>

#include <nlohmann/json.hpp>

#include "lathe/tensor.h"

namespace lathe {

class Generator {
 public:
  explicit Generator(std::uint64_t seed = 0x1a7e) { seed_with(seed); }
  void seed_with(std::uint64_t seed);
  std::uint64_t next_u64();
  double uniform();                          // [0, 1)
  double normal();                           // mean 0, standard deviation 1
  std::uint64_t below(std::uint64_t bound);  // uniform integer in [0, bound)

  struct State {
    std::uint64_t s[4];
    double spare_normal;
    bool has_spare;
  };
  State state() const { return state_; }
  void set_state(const State& state) { state_ = state; }
  // The exact state as JSON (the Box-Muller spare as raw bits), for checkpoints; from_json
  // errors are nlohmann's exceptions, which checkpoint readers report with the file.
  nlohmann::json state_json() const;
  void set_state_json(const nlohmann::json& json);

 private:
  State state_{};
};

// The generator that ops drawing random numbers (dropout) use: the process-wide one, unless a
// DefaultGeneratorScope on the calling thread says otherwise.
Generator& default_generator();
void manual_seed(std::uint64_t seed);  // reseeds the process-wide default generator

// While alive, default_generator() on this thread is `generator`: work split over threads (a
// batch in shards) gives each thread its own stream instead of racing on the shared one.
class DefaultGeneratorScope {
 public:
  explicit DefaultGeneratorScope(Generator& generator);
  ~DefaultGeneratorScope();
  DefaultGeneratorScope(const DefaultGeneratorScope&) = delete;
  DefaultGeneratorScope& operator=(const DefaultGeneratorScope&) = delete;

 private:
  Generator* previous_;
};

// In-place initializers; fan_in/fan_out are computed from the shape the way PyTorch does
// (weight [out, in, k...]: fan_in = in * prod(k), fan_out = out * prod(k)).
void uniform_(Tensor& tensor, double low, double high, Generator& generator);
void normal_(Tensor& tensor, double mean, double std, Generator& generator);
void kaiming_uniform_(Tensor& tensor, Generator& generator, double negative_slope = 0.0);
void kaiming_normal_(Tensor& tensor, Generator& generator, double negative_slope = 0.0);
void xavier_uniform_(Tensor& tensor, Generator& generator, double gain = 1.0);
void xavier_normal_(Tensor& tensor, Generator& generator, double gain = 1.0);
std::int64_t fan_in(const Shape& shape);
std::int64_t fan_out(const Shape& shape);

}  // namespace lathe
