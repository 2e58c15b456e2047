// The seed document's PyTorch program (section 5.2), line for line in lathe's C++ API, on
// Fashion-MNIST. `lathe train examples/fashion_mlp/config.toml` runs the same network from a
// config; this shows what that does underneath.
//
//   ./build/release/examples/fashion_mlp [epochs] [data_dir]
#include <fmt/format.h>

#include <filesystem>
#include <string>

#include "lathe/lathe.h"

using namespace lathe;

// The seed's LargeModel: 784-128-64-10 with ReLU.
class LargeModel : public Module {
 public:
  explicit LargeModel(Generator& generator)
      : fc1_(std::make_shared<Linear>(784, 128, true, generator)),
        fc2_(std::make_shared<Linear>(128, 64, true, generator)),
        fc3_(std::make_shared<Linear>(64, 10, true, generator)) {
    register_module("fc1", fc1_);
    register_module("fc2", fc2_);
    register_module("fc3", fc3_);
  }

  Tensor forward(const Tensor& input) override {
    Tensor x = reshape(input, {input.size(0), -1});  // x.view(x.size(0), -1)
    x = relu((*fc1_)(x));
    x = relu((*fc2_)(x));
    return (*fc3_)(x);
  }

  std::string type() const override { return "large_model"; }

 private:
  std::shared_ptr<Linear> fc1_, fc2_, fc3_;
};

int main(int argc, char** argv) {
  const int epochs = argc > 1 ? std::stoi(argv[1]) : 10;
  const std::string dir = argc > 2 ? argv[2] : "/usr/share/datasets/fashion-mnist";
  try {
    manual_seed(0);
    // Data preprocessing: ToTensor() (scale to [0,1]) then Normalize((0.5,), (0.5,)).
    const Preprocessing transform = Preprocessing::normalize(1.0 / 255, 0.5, 0.5);
    auto train_data = std::make_shared<TensorDataset>(
        transform.apply(read_idx(dir + "/train-images-idx3-ubyte.gz")),
        read_idx_labels(dir + "/train-labels-idx1-ubyte.gz"));
    auto test_data = std::make_shared<TensorDataset>(
        transform.apply(read_idx(dir + "/t10k-images-idx3-ubyte.gz")),
        read_idx_labels(dir + "/t10k-labels-idx1-ubyte.gz"));
    DataLoader train_loader(train_data, {.batch_size = 64, .shuffle = true});
    DataLoader test_loader(test_data, {.batch_size = 1000, .shuffle = false});

    // Build the model.
    Generator generator(0);
    LargeModel model(generator);

    // Train: Adam(lr=0.001) on the cross-entropy.
    Adam optimizer(model.named_parameters(), {.learning_rate = 0.001});
    for (int epoch = 0; epoch < epochs; ++epoch) {
      model.train();
      train_loader.start_epoch(epoch);
      std::int64_t batch_idx = 0;
      while (auto batch = train_loader.next()) {
        optimizer.zero_grad();
        Tensor output = model(batch->inputs);
        Tensor loss = cross_entropy(output, batch->targets);
        loss.backward();
        optimizer.step();
        if (batch_idx % 100 == 0) fmt::print("Epoch {}: Loss = {}\n", epoch, loss.item());
        ++batch_idx;
      }
      // Evaluate on held-out data each epoch (the seed's "validation_loss").
      const auto loss_fn = [](const Tensor& p, const Tensor& t) { return cross_entropy(p, t); };
      const EvaluationResult validation =
          evaluate(model, loss_fn, Task::Classification, test_loader);
      fmt::print("Epoch {}: Validation Loss = {}\n", epoch, validation.loss);
    }

    // Test accuracy, as the seed computes it: argmax of the outputs against the labels.
    NoGradGuard no_grad;
    model.eval();
    std::int64_t correct = 0, total = 0;
    test_loader.start_epoch(0);
    while (auto batch = test_loader.next()) {
      const Tensor predicted = argmax(model(batch->inputs), 1);
      for (std::int64_t i = 0; i < predicted.numel(); ++i)
        correct += predicted.data<std::int64_t>()[i] == batch->targets.data<std::int64_t>()[i];
      total += batch->targets.numel();
    }
    fmt::print("Accuracy: {}%\n",
               100.0 * static_cast<double>(correct) / static_cast<double>(total));

    // Save the weights (a custom Module has no registry entry, so this is a plain safetensors
    // state_dict; `lathe train` saves a full bundle).
    // Under runs/ (which git ignores), not beside the sources when run from the repository.
    const std::filesystem::path weights = "runs/fashion_mlp_weights.safetensors";
    std::filesystem::create_directories(weights.parent_path());
    save_safetensors(weights, model.state_dict());
    fmt::print("Saved {}\n", weights.string());
  } catch (const Error& e) {
    fmt::print(stderr, "fashion_mlp: {}\n", e.what());
    return 1;
  }
  return 0;
}
