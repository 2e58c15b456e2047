// `lathe demo`: learns whether a 2-D point lies inside a circle with a 2-16-2 MLP, written with
// the raw core (tensors, autograd, a hand-rolled SGD step), and reports the accuracy it reaches.
#include <fmt/format.h>

#include "lathe/lathe.h"
#include "src/cli/commands.h"

namespace lathe::cli {
namespace {

struct DemoOptions {
  int steps = 300;
  double learning_rate = 0.5;
  std::uint64_t seed = 7;
  int samples = 512;
};

// Points uniform in [-1, 1]^2, label 1 when inside the circle of radius 0.7.
std::pair<Tensor, Tensor> make_circle_data(int samples, Generator& generator) {
  Tensor points = Tensor::empty({samples, 2});
  uniform_(points, -1.0, 1.0, generator);
  std::vector<std::int64_t> labels(samples);
  for (int i = 0; i < samples; ++i) {
    const double x = points.at({i, 0}), y = points.at({i, 1});
    labels[i] = x * x + y * y < 0.49 ? 1 : 0;
  }
  return {points, Tensor::from_indices(labels, {samples})};
}

double accuracy(const Tensor& logits, const Tensor& labels) {
  const Tensor predicted = argmax(logits, 1);
  int correct = 0;
  for (std::int64_t i = 0; i < labels.numel(); ++i)
    correct += predicted.data<std::int64_t>()[i] == labels.data<std::int64_t>()[i];
  return 100.0 * correct / static_cast<double>(labels.numel());
}

int run_demo(const DemoOptions& options) {
  Generator generator(options.seed);
  auto [train_x, train_y] = make_circle_data(options.samples, generator);
  auto [test_x, test_y] = make_circle_data(options.samples, generator);

  Tensor w1 = Tensor::empty({2, 16}), b1 = Tensor::zeros({16});
  Tensor w2 = Tensor::empty({16, 2}), b2 = Tensor::zeros({2});
  xavier_uniform_(w1, generator);
  xavier_uniform_(w2, generator);
  std::vector<Tensor*> parameters{&w1, &b1, &w2, &b2};
  for (Tensor* p : parameters) p->requires_grad_();
  const auto forward = [&](const Tensor& x) { return matmul(tanh(matmul(x, w1) + b1), w2) + b2; };

  fmt::print("demo: 2-16-2 MLP, {} points, SGD lr {}, {} steps, seed {}\n", options.samples,
             options.learning_rate, options.steps, options.seed);
  for (int step = 0; step <= options.steps; ++step) {
    Tensor loss = cross_entropy(forward(train_x), train_y);
    if (step % 50 == 0) fmt::print("Step {}: Loss = {:.4f}\n", step, loss.item());
    if (step == options.steps) break;
    for (Tensor* p : parameters) p->zero_grad();
    loss.backward();
    NoGradGuard no_grad;
    for (Tensor* p : parameters) p->copy_(*p - p->grad() * options.learning_rate);
  }
  NoGradGuard no_grad;
  const double train_accuracy = accuracy(forward(train_x), train_y);
  const double test_accuracy = accuracy(forward(test_x), test_y);
  fmt::print("Train accuracy: {:.1f}%\nTest accuracy: {:.1f}%\n", train_accuracy, test_accuracy);
  return 0;
}

}  // namespace

void add_demo_command(CLI::App& app) {
  auto options = std::make_shared<DemoOptions>();
  CLI::App* demo = app.add_subcommand(
      "demo", "Train a tiny MLP on generated 2-D points with the core autograd (a smoke test)");
  demo->add_option("--steps", options->steps, "SGD steps")->check(kPositive)->capture_default_str();
  demo->add_option("--lr", options->learning_rate, "learning rate")
      ->check(kPositive)
      ->capture_default_str();
  demo->add_option("--seed", options->seed, "random seed")->capture_default_str();
  demo->add_option("--samples", options->samples, "points in each of train and test")
      ->check(CLI::Range(8, 1000000))
      ->capture_default_str();
  demo->callback([options] { run_demo(*options); });
}

}  // namespace lathe::cli
