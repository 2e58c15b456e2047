#pragma once
// Tests of table models: a one-layer classifier over a fitted encoding, with the task info
// `lathe train` records for a CSV table, ready for save_bundle or a Predictor.
#include <cstdint>

#include "lathe/lathe.h"

namespace lathe::testing {

inline LoadedBundle linear_table_classifier(const TableEncoding& encoding, std::uint64_t seed) {
  Generator init(seed);
  auto model = make_sequential(
      nlohmann::json::array({{{"type", "linear"},
                              {"in", encoding.width()},
                              {"out", static_cast<std::int64_t>(encoding.classes().size())}}}),
      init);
  model->eval();
  const nlohmann::json task = {{"task", "classification"},
                               {"format", "csv"},
                               {"input_shape", {encoding.width()}},
                               {"classes", encoding.classes()},
                               {"features", encoding.column_names()},
                               {"encoding", encoding.to_json()}};
  return LoadedBundle{model, {model->spec(), Preprocessing::none(), task, {}}};
}

}  // namespace lathe::testing
