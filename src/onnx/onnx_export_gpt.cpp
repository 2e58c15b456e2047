// ONNX export of a GPT language model: token ids [N, T] in, next-token logits [N, T, vocab] out,
// computing what lathe::GPT::forward computes (src/nn/gpt.cpp, src/nn/gpt_block.h and the fused
// attention of src/ops/attention.cpp), step by step in ONNX operators:
//
//   x = Gather(wte, tokens) + Slice(wpe, 0..T)                       [N, T, C]
//   each block: x += proj(attention(ln1(x))); x += fcproj(gelu_tanh(fc(ln2(x))))
//   attention: qkv [N, T, 3C] -> Reshape [N, T, 3, H, D] -> Transpose [3, N, H, T, D] -> Gather
//     q, k, v; softmax(Where(mask[:T, :T], (q k^T) / sqrt(D), lowest float)) v, heads merged
//   logits = lnf(x) wte^T                                            (the head is tied to wte)
//
// Initializers keep the bundle's tensor names ("wte.weight", "blocks.0.qkv.weight"); value names
// are "NAME/step" ("blocks.0.attn/scores").
#include <fmt/format.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <limits>
#include <map>
#include <set>

#include "lathe/error.h"
#include "lathe/gpt.h"
#include "lathe/onnx.h"
#include "lathe/version.h"
#include "src/nn/gpt_block.h"
#include "src/onnx/onnx_export_support.h"

namespace lathe::onnx_export {
namespace {

using nlohmann::json;

// Adds a GPT's nodes to a graph; each method takes and returns value names.
class GptGraph {
 public:
  GptGraph(GraphBuilder& g, const GPT& gpt)
      : g_(g), gpt_(gpt), config_(gpt.config()), state_(gpt.state_dict()) {}

  // tokens int64 [N, T] -> logits float32 [N, T, vocab_size], named "logits".
  void build(const std::string& tokens) {
    std::string x = embeddings(tokens);
    causal_mask();
    for (std::size_t i = 0; i < gpt_.blocks().size(); ++i) x = block(x, i);
    x = layer_norm(x, "lnf", gpt_.final_norm());
    // The output head is the token embedding, transposed: [C, vocab_size].
    set_attribute(g_.add("Transpose", {parameter("wte.weight")}, "lm_head/weight_t"), "perm",
                  std::vector<std::int64_t>{1, 0});
    g_.add("MatMul", {x, "lm_head/weight_t"}, "logits");
    for (const auto& [name, tensor] : state_)
      if (!used_.count(name))
        throw Error(fmt::format("export: gpt tensor '{}' is not used by its ONNX form", name));
  }

 private:
  // The bundle's tensor `name` as an initializer (added on first use); returns its name.
  std::string parameter(const std::string& name) {
    auto found = state_.find(name);
    if (found == state_.end()) throw Error(fmt::format("export: the gpt has no tensor '{}'", name));
    if (used_.insert(name).second) g_.initializer(name, found->second, found->second.shape());
    return name;
  }

  // Token embeddings plus the first T position embeddings (T from the tokens' shape).
  std::string embeddings(const std::string& tokens) {
    g_.add("Gather", {parameter("wte.weight"), tokens}, "embed/tokens");
    onnx::NodeProto& time = g_.add("Shape", {tokens}, "embed/time");  // [T]
    set_attribute(time, "start", std::int64_t{1});
    set_attribute(time, "end", std::int64_t{2});
    g_.add("Slice",
           {parameter("wpe.weight"), g_.int64s("const/zero", {0}), "embed/time",
            g_.int64s("const/axis0", {0})},
           "embed/positions");  // [T, C]
    return g_.add("Add", {"embed/tokens", "embed/positions"}, "embed/sum").output(0);
  }

  // "mask/causal" bool [T, T]: true where key j <= query i, sliced from a [block_size,
  // block_size] constant.
  void causal_mask() {
    const std::int64_t b = config_.block_size;
    std::vector<bool> lower(static_cast<std::size_t>(b * b));
    for (std::int64_t i = 0; i < b; ++i)
      for (std::int64_t j = 0; j <= i; ++j) lower[static_cast<std::size_t>(i * b + j)] = true;
    g_.bools("causal_mask", lower, {b, b});
    set_attribute(g_.add("Concat", {"embed/time", "embed/time"}, "mask/size"), "axis",
                  std::int64_t{0});
    g_.add("Slice", {"causal_mask", g_.int64s("const/zeros2", {0, 0}), "mask/size"}, "mask/causal");
  }

  // LayerNormalization over the last axis, with the module's eps, bias when it has one.
  std::string layer_norm(const std::string& x, const std::string& name, const Module& norm) {
    const json spec = norm.spec();
    std::vector<std::string> inputs{x, parameter(name + ".weight")};
    if (spec.value("bias", true)) inputs.push_back(parameter(name + ".bias"));
    onnx::NodeProto& node = g_.add("LayerNormalization", inputs, name + "/norm");
    set_attribute(node, "axis", std::int64_t{-1});
    set_attribute(node, "epsilon", static_cast<float>(spec.value("eps", 1e-5)));
    return name + "/norm";
  }

  // y = x W^T (+ b) with W stored [out, in].
  std::string linear(const std::string& x, const std::string& name) {
    set_attribute(g_.add("Transpose", {parameter(name + ".weight")}, name + "/weight_t"), "perm",
                  std::vector<std::int64_t>{1, 0});
    g_.add("MatMul", {x, name + "/weight_t"}, name + "/matmul");
    if (!config_.bias) return name + "/matmul";
    return g_.add("Add", {name + "/matmul", parameter(name + ".bias")}, name + "/add").output(0);
  }

  // Causal multi-head self-attention of h [N, T, C], before the output projection.
  std::string attention(const std::string& h, const std::string& prefix) {
    const std::int64_t heads = config_.n_head, width = config_.n_embd / config_.n_head;
    const auto v = [&](const char* step) { return prefix + ".attn/" + step; };
    const std::string qkv = linear(h, prefix + ".qkv");  // [N, T, 3C]: q, k, v, head by head
    g_.add("Reshape", {qkv, g_.int64s(v("split_shape"), {0, 0, 3, heads, width})}, v("split"));
    set_attribute(g_.add("Transpose", {v("split")}, v("heads")), "perm",
                  std::vector<std::int64_t>{2, 0, 3, 1, 4});  // [3, N, H, T, D]
    const char* parts[] = {"q", "k", "v"};
    for (std::int64_t i = 0; i < 3; ++i)
      g_.add("Gather", {v("heads"), index(i)}, v(parts[i]));  // [N, H, T, D]
    set_attribute(g_.add("Transpose", {v("k")}, v("k_t")), "perm",
                  std::vector<std::int64_t>{0, 1, 3, 2});
    g_.add("MatMul", {v("q"), v("k_t")}, v("qk"));  // [N, H, T, T]
    g_.add("Mul", {v("qk"), g_.scalar(1.0 / std::sqrt(static_cast<double>(width)))}, v("scores"));
    g_.add("Where", {"mask/causal", v("scores"), g_.scalar(std::numeric_limits<float>::lowest())},
           v("masked"));
    set_attribute(g_.add("Softmax", {v("masked")}, v("weights")), "axis", std::int64_t{-1});
    g_.add("MatMul", {v("weights"), v("v")}, v("attended"));  // [N, H, T, D]
    set_attribute(g_.add("Transpose", {v("attended")}, v("merged_t")), "perm",
                  std::vector<std::int64_t>{0, 2, 1, 3});  // [N, T, H, D]
    return g_
        .add("Reshape", {v("merged_t"), g_.int64s(v("merged_shape"), {0, 0, config_.n_embd})},
             v("merged"))
        .output(0);
  }

  // x + attention branch, then + MLP branch (dropout is the identity at inference).
  std::string block(const std::string& x, std::size_t i) {
    const auto* layers = dynamic_cast<const detail::GPTBlock*>(gpt_.blocks()[i].get());
    if (!layers) throw Error(fmt::format("export: gpt block {} is not a gpt_block", i));
    const std::string prefix = fmt::format("blocks.{}", i);
    const std::string attended = attention(layer_norm(x, prefix + ".ln1", *layers->ln1), prefix);
    const std::string projected = linear(attended, prefix + ".proj");
    g_.add("Add", {x, projected}, prefix + "/residual1");
    const std::string hidden =
        linear(layer_norm(prefix + "/residual1", prefix + ".ln2", *layers->ln2), prefix + ".fc");
    const std::string activated = add_gelu(g_, hidden, true, prefix + ".gelu");
    const std::string mlp = linear(activated, prefix + ".fcproj");
    return g_.add("Add", {prefix + "/residual1", mlp}, prefix + "/residual2").output(0);
  }

  // A shared rank-0 int64 index for Gather.
  std::string index(std::int64_t i) {
    const std::string name = fmt::format("const/index{}", i);
    if (indices_.insert(i).second) g_.int64_scalar(name, i);
    return name;
  }

  GraphBuilder& g_;
  const GPT& gpt_;
  const GPTConfig& config_;
  const std::map<std::string, Tensor> state_;
  std::set<std::string> used_;
  std::set<std::int64_t> indices_;
};

}  // namespace

OnnxModel build_gpt_onnx_model(const LoadedBundle& bundle) {
  const auto* gpt = dynamic_cast<const GPT*>(bundle.model.get());
  if (!gpt)
    throw Error(fmt::format(
        "export: a language model of type '{}' has no ONNX form; lathe exports the 'gpt'",
        bundle.model ? bundle.model->type() : std::string("none")));
  const LanguageModel lm = as_language_model(bundle, "export");
  const GPTConfig& config = gpt->config();

  onnx::ModelProto model;
  start_model(model);
  model.set_doc_string(
      "A lathe GPT language model. Input 'tokens': int64 token ids [N, T], T <= block_size "
      "(metadata 'lathe.architecture'). Output 'logits': float32 [N, T, vocab_size], the "
      "next-token logits at every position. The tokenizer that maps text to token ids is in "
      "metadata 'lathe.tokenizer'.");
  onnx::GraphProto& graph = *model.mutable_graph();
  graph.set_name("lathe_gpt");
  GraphBuilder builder(graph);

  OnnxModel result;
  result.inputs = {{"tokens", {"N", "T"}, "int64"}};
  result.input = result.inputs.front();
  result.outputs = {{"logits", {"N", "T", std::to_string(config.vocab_size)}, "float32"}};
  builder.reserve("tokens");
  set_tensor_type(*graph.add_input(), result.input);
  GptGraph(builder, *gpt).build("tokens");
  set_tensor_type(*graph.add_output(), result.outputs.front());

  json task = bundle.info.task;
  task.erase("tokenizer");  // in lathe.tokenizer, not twice
  add_metadata(model, "lathe.version", version());
  add_metadata(model, "lathe.task", task.dump());
  add_metadata(model, "lathe.tokenizer", lm.tokenizer->to_json().dump());
  add_metadata(model, "lathe.architecture", gpt->spec().dump());
  add_metadata(model, "lathe.metrics", bundle.info.metrics.dump());
  finish_model(model, result);
  return result;
}

}  // namespace lathe::onnx_export
