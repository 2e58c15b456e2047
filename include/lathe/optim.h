#pragma once
// Optimizers, learning-rate schedules and gradient clipping. Optimizer state is keyed by
// parameter name (never by pointer), so it can be saved, restored and inspected.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lathe/tensor.h"

namespace lathe {

class Optimizer {
 public:
  Optimizer(std::vector<NamedTensor> parameters, double learning_rate);
  virtual ~Optimizer() = default;

  // Applies one update to every parameter that has a gradient; parameters without one are
  // skipped (as in PyTorch). Updates are in place on the parameters' storage.
  virtual void step() = 0;
  void zero_grad();  // drops every parameter's gradient

  double learning_rate() const { return learning_rate_; }
  void set_learning_rate(double learning_rate);
  std::int64_t steps_taken() const { return steps_; }

  // The full state: per-parameter buffers named "<buffer>.<parameter name>" (e.g.
  // "exp_avg.fc1.weight") plus "step" (a float64 scalar). load_state checks that every name and
  // shape matches and names the first one that does not.
  virtual std::map<std::string, Tensor> state() const;
  virtual void load_state(const std::map<std::string, Tensor>& state);
  virtual std::string name() const = 0;  // "sgd", "adam", "adamw"

  const std::vector<NamedTensor>& parameters() const { return parameters_; }

  // Leaves out of weight decay the parameters `exempt` picks (PyTorch's second param group with
  // weight_decay 0): e.g. biases, LayerNorm weights and embeddings' positions as GPTs do.
  void exempt_from_weight_decay(const std::function<bool(const NamedTensor&)>& exempt);

 protected:
  bool decays(std::size_t index) const { return decays_.empty() || decays_[index]; }
  // The buffer `buffer` of parameter `index`, created as zeros of the parameter's shape.
  Tensor& buffer(const std::string& buffer, std::size_t index);

  std::vector<NamedTensor> parameters_;
  double learning_rate_;
  std::int64_t steps_ = 0;
  std::map<std::string, Tensor> buffers_;
  std::vector<bool> decays_;  // per parameter; empty: all
};

struct SGDOptions {
  double learning_rate = 0.01;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;  // L2, added to the gradient
  bool nesterov = false;
};

struct AdamOptions {
  double learning_rate = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double epsilon = 1e-8;
  double weight_decay = 0.0;  // Adam: L2 added to the gradient; AdamW: decoupled
};

// torch.optim.SGD's update rule.
class SGD : public Optimizer {
 public:
  SGD(std::vector<NamedTensor> parameters, const SGDOptions& options);
  void step() override;
  std::string name() const override { return "sgd"; }

 private:
  SGDOptions options_;
};

// torch.optim.Adam (amsgrad off) and torch.optim.AdamW: the same moments, different decay.
class Adam : public Optimizer {
 public:
  Adam(std::vector<NamedTensor> parameters, const AdamOptions& options, bool decoupled = false);
  void step() override;
  std::string name() const override { return decoupled_ ? "adamw" : "adam"; }

 private:
  AdamOptions options_;
  bool decoupled_;
};

class AdamW : public Adam {
 public:
  // Set options.weight_decay explicitly: PyTorch's AdamW defaults to 0.01, AdamOptions to 0.
  AdamW(std::vector<NamedTensor> parameters, AdamOptions options)
      : Adam(std::move(parameters), options, true) {}
};

// A learning rate as a function of the optimizer step (0-based: the rate used for step t).
class LRSchedule {
 public:
  virtual ~LRSchedule() = default;
  virtual double learning_rate(std::int64_t step) const = 0;
};

class ConstantLR : public LRSchedule {
 public:
  explicit ConstantLR(double base) : base_(base) {}
  double learning_rate(std::int64_t) const override { return base_; }

 private:
  double base_;
};

// base * gamma^floor(step / step_size), as torch.optim.lr_scheduler.StepLR stepped per step.
class StepLR : public LRSchedule {
 public:
  StepLR(double base, std::int64_t step_size, double gamma);
  double learning_rate(std::int64_t step) const override;

 private:
  double base_;
  std::int64_t step_size_;
  double gamma_;
};

// Linear warmup over warmup_steps, base * (step + 1) / (warmup_steps + 1) (nanoGPT's and
// torch_gpt.py's: the first step already moves), then cosine decay from base to min_lr at
// total_steps (and min_lr after it).
class CosineWarmupLR : public LRSchedule {
 public:
  CosineWarmupLR(double base, std::int64_t warmup_steps, std::int64_t total_steps,
                 double min_lr = 0.0);
  double learning_rate(std::int64_t step) const override;

 private:
  double base_;
  std::int64_t warmup_steps_, total_steps_;
  double min_lr_;
};

// Scales all gradients so their global L2 norm is at most max_norm (as
// torch.nn.utils.clip_grad_norm_); returns the norm before clipping. Tensors without a gradient
// are ignored.
double clip_grad_norm(const std::vector<Tensor>& parameters, double max_norm);

}  // namespace lathe
