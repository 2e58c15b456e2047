// A program of a user's own against an installed lathe: a few training steps of a small MLP,
// its bundle saved and loaded back, the same predictions. Built by tests/consumer/cmake (with
// find_package(lathe)) and tests/consumer/make (with pkg-config), never from lathe's build tree.
#include <cstdio>
#include <filesystem>

#include "lathe/lathe.h"

using namespace lathe;

int main(int argc, char** argv) {
  try {
    const std::filesystem::path bundle = argc > 1 ? argv[1] : "consumer.safetensors";
    Generator generator(0);
    const Tensor inputs = Tensor::randn({64, 4}, generator);
    std::vector<std::int64_t> labels(64);
    const std::vector<double> values = inputs.to_vector();
    for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = values[4 * i] > 0 ? 1 : 0;
    const Tensor targets = Tensor::from_indices(labels, {64});
    auto model = make_sequential(nlohmann::json::parse(R"([{"type": "linear", "in": 4, "out": 8},
      {"type": "relu"}, {"type": "linear", "in": 8, "out": 2}])"),
                                 generator);
    Adam optimizer(model->named_parameters(), {.learning_rate = 0.05});
    double first = 0, last = 0;
    for (int step = 0; step < 20; ++step) {
      optimizer.zero_grad();
      Tensor loss = cross_entropy(model->forward(inputs), targets);
      (step == 0 ? first : last) = loss.item();
      loss.backward();
      optimizer.step();
    }
    save_bundle(bundle, *model,
                {model->spec(),
                 Preprocessing::none(),
                 {{"task", "classification"}, {"input_shape", {4}}},
                 {}});
    const LoadedBundle loaded = load_bundle(bundle);
    model->eval();
    const bool same =
        loaded.model->forward(inputs).to_vector() == model->forward(inputs).to_vector();
    std::printf("loss %.4f -> %.4f; bundle %s reloads %s\n", first, last, bundle.c_str(),
                same ? "with the same predictions" : "with OTHER predictions");
    return same && last < first ? 0 : 1;
  } catch (const Error& e) {
    std::fprintf(stderr, "consumer: %s\n", e.what());
    return 1;
  }
}
