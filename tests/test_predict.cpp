// Predictor: the bundle's preprocessing and softmax applied the same way as training and eval.
#include <gtest/gtest.h>

#include "lathe/lathe.h"
#include "tests/test_support.h"

namespace lathe {
namespace {
using testing::error_of;

LoadedBundle tiny_classifier(const nlohmann::json& task) {
  Generator init(3);
  auto model = make_sequential(nlohmann::json::array({{{"type", "flatten"}},
                                                      {{"type", "linear"}, {"in", 4}, {"out", 3}},
                                                      {{"type", "relu"}},
                                                      {{"type", "linear"}, {"in", 3}, {"out", 2}}}),
                               init);
  model->eval();
  return {model, {model->spec(), Preprocessing::normalize(0.5, 1.0, 2.0), task, {}}};
}

TEST(Predictor, AppliesPreprocessingThenSoftmax) {
  LoadedBundle bundle = tiny_classifier(
      {{"task", "classification"}, {"input_shape", {2, 2}}, {"classes", {"cat", "dog"}}});
  const auto model = bundle.model;
  const Predictor predictor(bundle);
  EXPECT_EQ(predictor.class_names(), (std::vector<std::string>{"cat", "dog"}));
  EXPECT_EQ(predictor.input_features(), 4);

  const Tensor raw = Tensor::from_vector({1, 2, 3, 4, -4, 0, 8, 2}, {2, 4});
  const Tensor probabilities = predictor.predict(raw);
  NoGradGuard no_grad;
  const Tensor expected =
      softmax(model->forward(reshape(bundle.info.preprocessing.apply(raw), {2, 2, 2})), -1);
  ASSERT_EQ(probabilities.shape(), (Shape{2, 2}));
  for (std::int64_t i = 0; i < 4; ++i)
    EXPECT_FLOAT_EQ(probabilities.to_vector()[i], expected.to_vector()[i]);
  EXPECT_NEAR(probabilities.at({0, 0}) + probabilities.at({0, 1}), 1.0, 1e-6);
}

TEST(Predictor, RejectsInputsThatAreNotWholeExamples) {
  const Predictor predictor(tiny_classifier({{"task", "classification"}, {"input_shape", {4}}}));
  EXPECT_EQ(predictor.class_names(), (std::vector<std::string>{"0", "1"}));
  EXPECT_NE(error_of([&] {
              predictor.predict(Tensor::zeros({2, 3}));
            }).find("shape [2,3]"),
            std::string::npos);
}

TEST(Predictor, RejectsClassNamesThatDoNotMatchTheModel) {
  EXPECT_NE(
      error_of([] {
        Predictor(tiny_classifier(
            {{"task", "classification"}, {"input_shape", {4}}, {"classes", {"a", "b", "c"}}}));
      }).find("3 class names but the model has 2 outputs"),
      std::string::npos);
}

TEST(Predictor, RejectsATaskKindThatIsNotAString) {
  EXPECT_NE(error_of([] {
              Predictor(tiny_classifier({{"task", 7}, {"input_shape", {4}}}));
            }).find("lathe.task \"task\" is not a string"),
            std::string::npos);
}

TEST(Predictor, ArgmaxRows) {
  EXPECT_EQ(argmax_rows(Tensor::from_vector({0.1, 0.7, 0.2, 0.5, 0.2, 0.3}, {2, 3})),
            (std::vector<std::int64_t>{1, 0}));
}

}  // namespace
}  // namespace lathe
