// Palmer penguins, written out with lathe's C++ API: read the table (strings and NA cells as
// they are), hold out a test split, fit the encoding on the training rows (median / most frequent
// imputation, one-hot categories), standardize, and train a 64-64 MLP with Adam on the
// cross-entropy. `lathe train examples/penguins/config.toml` does the same from a config.
//
//   ./build/release/examples/penguins [penguins.csv] [target] [seed]
//   ./build/release/examples/penguins --split-rows ROWS SEED   the rows of each split, as JSON
//     (what examples/penguins/compare.py gives scikit-learn, so that both see the same rows)
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <string>

#include "lathe/lathe.h"

using namespace lathe;

// features -> 64 -> 64 -> classes, ReLU: scikit-learn's MLPClassifier(hidden_layer_sizes=(64, 64)).
class PenguinNet : public Module {
 public:
  PenguinNet(std::int64_t features, std::int64_t classes, Generator& generator)
      : fc1_(std::make_shared<Linear>(features, 64, true, generator)),
        fc2_(std::make_shared<Linear>(64, 64, true, generator)),
        fc3_(std::make_shared<Linear>(64, classes, true, generator)) {
    register_module("fc1", fc1_);
    register_module("fc2", fc2_);
    register_module("fc3", fc3_);
  }
  Tensor forward(const Tensor& x) override { return (*fc3_)(relu((*fc2_)(relu((*fc1_)(x))))); }
  std::string type() const override { return "penguin_net"; }

 private:
  std::shared_ptr<Linear> fc1_, fc2_, fc3_;
};

int main(int argc, char** argv) {
  try {
    if (argc == 4 && std::string(argv[1]) == "--split-rows") {
      // The config's fractions: 20% test, then 10% of the rest for validation.
      const SplitRows split = split_rows(std::stoll(argv[2]), 0.2, 0.1, std::stoull(argv[3]));
      fmt::print("{{\"train\": [{}], \"validation\": [{}], \"test\": [{}]}}\n",
                 fmt::join(split.train, ","), fmt::join(split.validation, ","),
                 fmt::join(split.test, ","));
      return 0;
    }
    const std::string path =
        argc > 1 ? argv[1] : "data/deb/usr/lib/R/site-library/palmerpenguins/extdata/penguins.csv";
    const std::string target = argc > 2 ? argv[2] : "species";
    const std::uint64_t seed = argc > 3 ? std::stoull(argv[3]) : 0;
    manual_seed(seed);

    // The table, its split, and the encoding fitted on the training rows only.
    const RawTable table = read_csv_table(path);
    const SplitRows split = split_rows(table.rows, 0.2, 0.1, seed);
    TableOptions options;
    options.target = target;
    options.impute = "median";                     // numeric columns
    options.impute_categorical = "most_frequent";  // island, species, sex
    const TableEncoding encoding = TableEncoding::fit(table, split.train, options);
    for (const std::string& line : encoding.describe()) fmt::print("  {}\n", line);
    const TensorDataset all(encoding.transform(table), encoding.transform_target(table));
    const TensorDataset train = all.subset(split.train);
    const Preprocessing standardize = Preprocessing::standardize(train.inputs());
    auto train_data =
        std::make_shared<TensorDataset>(standardize.apply(train.inputs()), train.targets());
    const TensorDataset test_rows = all.subset(split.test);
    auto test_data =
        std::make_shared<TensorDataset>(standardize.apply(test_rows.inputs()), test_rows.targets());
    DataLoader train_loader(train_data, {.batch_size = 32, .shuffle = true, .seed = seed});

    Generator generator(seed);
    PenguinNet model(encoding.width(), static_cast<std::int64_t>(encoding.classes().size()),
                     generator);

    Adam optimizer(model.named_parameters(), {.learning_rate = 0.001});
    for (int epoch = 0; epoch < 200; ++epoch) {
      model.train();
      train_loader.start_epoch(epoch);
      while (auto batch = train_loader.next()) {
        optimizer.zero_grad();
        Tensor loss = cross_entropy(model(batch->inputs), batch->targets);
        loss.backward();
        optimizer.step();
      }
    }

    NoGradGuard no_grad;
    model.eval();
    const Tensor predicted = argmax(model(test_data->inputs()), 1);
    std::int64_t correct = 0;
    for (std::int64_t i = 0; i < predicted.numel(); ++i)
      correct += predicted.data<std::int64_t>()[i] == test_data->targets().data<std::int64_t>()[i];
    fmt::print("{} from {} features; classes {}\n", target, encoding.width(),
               fmt::join(encoding.classes(), ", "));
    fmt::print("Test accuracy: {:.2f}% on {} penguins\n",
               100.0 * static_cast<double>(correct) / static_cast<double>(predicted.numel()),
               predicted.numel());
  } catch (const Error& e) {
    fmt::print(stderr, "penguins: {}\n", e.what());
    return 1;
  }
  return 0;
}
