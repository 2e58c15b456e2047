#pragma once
// Internal: the checkpoint file both trainers write (src/train/checkpoint.cpp and
// src/train/lm_trainer.cpp): model and optimizer tensors plus a JSON state, replaced atomically;
// generator states as JSON.
#include <filesystem>
#include <functional>

#include <nlohmann/json.hpp>

#include "lathe/nn.h"
#include "lathe/optim.h"
#include "lathe/random.h"

namespace lathe::detail {

nlohmann::json generator_to_json(const Generator::State& state);
Generator::State generator_from_json(const nlohmann::json& json);

// Writes the model's and the optimizer's tensors and `state`, with the optimizer's name and the
// run identity added to it, to `path` atomically.
void write_checkpoint(const std::filesystem::path& path, const Module& model,
                      const Optimizer& optimizer, nlohmann::json state,
                      const nlohmann::json& run_identity);

// Reads the checkpoint at `path`, refuses one from another run or optimizer, loads the model and
// optimizer from it and hands its state to `restore`. Every error names the file.
void read_checkpoint(const std::filesystem::path& path, Module& model, Optimizer& optimizer,
                     const nlohmann::json& run_identity,
                     const std::function<void(const nlohmann::json& state)>& restore);

}  // namespace lathe::detail
