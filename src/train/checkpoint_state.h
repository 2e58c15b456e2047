#pragma once
// Internal: the pieces of a checkpoint both trainers write (src/train/checkpoint.cpp and
// src/train/lm_trainer.cpp): generator states as JSON, tensor maps under a name prefix.
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "lathe/random.h"
#include "lathe/tensor.h"

namespace lathe::detail {

nlohmann::json generator_to_json(const Generator::State& state);
Generator::State generator_from_json(const nlohmann::json& json);
std::map<std::string, Tensor> with_prefix(const std::map<std::string, Tensor>& tensors,
                                          const std::string& prefix);
// The tensors whose names start with prefix, with the prefix removed.
std::map<std::string, Tensor> strip_prefix(const std::map<std::string, Tensor>& tensors,
                                           const std::string& prefix);

}  // namespace lathe::detail
