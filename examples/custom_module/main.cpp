// A model class of one's own (moon_net.h), through the whole life of a model: trained by lathe's
// Trainer (in shards on the pool's threads, like a built-in model), saved as a bundle, loaded
// back, predicted and served over HTTP, with each answer checked against the model itself.
// Data: two interleaving half-moons, as scikit-learn's make_moons draws them.
//
//   ./build/release/examples/custom_module [output_dir]
// then, with the plugin built beside it (the same registration in a shared library):
//   lathe --plugin build/release/examples/libmoon_net_plugin.so predict OUTPUT/model.safetensors
//     OUTPUT/test.csv
#include <fmt/format.h>
#include <httplib.h>

#include <cmath>
#include <fstream>
#include <iostream>
#include <numbers>

#include "examples/custom_module/moon_net.h"
#include "lathe/lathe.h"
#include "lathe/serve.h"

using namespace lathe;

namespace {

// `count` points on two half-moons with Gaussian noise: label 0 on the upper, 1 on the lower.
TensorDataset two_moons(std::int64_t count, double noise, Generator& generator) {
  std::vector<double> points;
  std::vector<std::int64_t> labels;
  for (std::int64_t i = 0; i < count; ++i) {
    const std::int64_t label = i % 2;
    const double angle = std::numbers::pi * generator.uniform();
    const double x = label == 0 ? std::cos(angle) : 1 - std::cos(angle);
    const double y = label == 0 ? std::sin(angle) : 0.5 - std::sin(angle);
    points.push_back(x + noise * generator.normal());
    points.push_back(y + noise * generator.normal());
    labels.push_back(label);
  }
  return TensorDataset(Tensor::from_vector(points, {count, 2}),
                       Tensor::from_indices(labels, {count}));
}

// The test points as the CSV `lathe eval` and `lathe predict` read (columns x, y, label).
void write_csv(const std::filesystem::path& path, const TensorDataset& data) {
  std::ofstream out(path);
  out << "x,y,label\n";
  const std::vector<double> points = data.inputs().to_vector();
  const std::vector<double> labels = data.targets().to_vector();
  for (std::size_t i = 0; i < labels.size(); ++i)
    out << fmt::format("{},{},{}\n", points[2 * i], points[2 * i + 1], labels[i]);
}

double largest_difference(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return INFINITY;
  double largest = 0;
  for (std::size_t i = 0; i < a.size(); ++i) largest = std::max(largest, std::abs(a[i] - b[i]));
  return largest;
}

}  // namespace

int main(int argc, char** argv) {
  const std::filesystem::path out = argc > 1 ? argv[1] : "runs/moon_net";
  try {
    manual_seed(0);
    Generator data_generator(0);
    auto [train, test] = random_split(two_moons(1200, 0.2, data_generator), 0.25, 0);
    auto [train_part, validation] = random_split(train, 0.1, 1);
    DataLoader train_loader(std::make_shared<TensorDataset>(train_part), {.batch_size = 32});
    DataLoader validation_loader(std::make_shared<TensorDataset>(validation),
                                 {.batch_size = 256, .shuffle = false});
    DataLoader test_loader(std::make_shared<TensorDataset>(test),
                           {.batch_size = 256, .shuffle = false});

    // Built through the registry, as a config's [model] type = "moon_net" would be.
    Generator init(0);
    const std::shared_ptr<Module> model =
        make_layer({{"type", "moon_net"}, {"inputs", 2}, {"hidden", 32}, {"classes", 2}}, init);
    Adam optimizer(model->named_parameters(), {.learning_rate = 0.01});
    const LossFunction loss = loss_for("cross_entropy");
    TrainerOptions options{.epochs = 20, .log_every = 0, .shards = 2};
    Trainer trainer(*model, optimizer, loss, Task::Classification, options, nullptr, std::cout);
    fmt::print("Training moon_net in {} shard(s)\n", trainer.shards());
    trainer.fit(train_loader, &validation_loader);
    const EvaluationResult result = evaluate(*model, loss, Task::Classification, test_loader);
    fmt::print("Test accuracy: {:.2f}% on {} points\n", 100 * result.accuracy, result.count);

    // A bundle of it, loaded back: the registry rebuilds the module from its spec().
    std::filesystem::create_directories(out);
    const auto bundle = out / "model.safetensors";
    const nlohmann::json task = {
        {"task", "classification"}, {"input_shape", {2}}, {"classes", {"upper", "lower"}},
        {"format", "csv"},          {"target", "label"},  {"features", {"x", "y"}}};
    save_bundle(bundle, *model, {model->spec(), Preprocessing::none(), task, {}});
    write_csv(out / "test.csv", test);
    const Predictor predictor = Predictor::load(bundle);
    const Tensor points = slice(test.inputs(), 0, 0, 8);
    model->eval();
    const std::vector<double> expected = softmax(model->forward(points), 1).to_vector();
    const double loaded = largest_difference(predictor.predict(points).to_vector(), expected);
    fmt::print("Bundle {}: reloaded predictions differ by at most {:.3g}\n", bundle.string(),
               loaded);

    // Served over HTTP (Open Inference Protocol v2), answering as the model does.
    InferenceServer server({{"moon_net", bundle}}, {.port = 0, .log = [](std::string_view) {}});
    const int port = server.start();
    server.load_models();
    httplib::Client client("127.0.0.1", port);
    const nlohmann::json request = {{"inputs",
                                     {{{"name", "input"},
                                       {"datatype", "FP32"},
                                       {"shape", {8, 2}},
                                       {"data", points.to_vector()}}}}};
    const auto response =
        client.Post("/v2/models/moon_net/infer", request.dump(), "application/json");
    if (!response || response->status != 200)
      throw Error(fmt::format("serve: {}", response ? response->body : "no answer"));
    const nlohmann::json answer = nlohmann::json::parse(response->body);
    const double served =
        largest_difference(answer["outputs"][0]["data"].get<std::vector<double>>(), expected);
    fmt::print("Served on port {}: predictions differ by at most {:.3g}\n", port, served);
    server.stop();
    if (loaded > 1e-6 || served > 1e-6) throw Error("the bundle does not answer as the model");
  } catch (const Error& e) {
    fmt::print(stderr, "custom_module: {}\n", e.what());
    return 1;
  }
  return 0;
}
