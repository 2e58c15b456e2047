// safetensors round trips, and hostile files rejected with errors naming tensor and field.
#include <gtest/gtest.h>

#include "lathe/lathe.h"
#include "tests/test_support.h"

namespace lathe {
namespace {

using testing::error_of;

using testing::TempDir;

// A file with the given JSON header (padded as the format asks) and `data_bytes` zero bytes.
std::string file_with_header(const std::string& header, std::size_t data_bytes) {
  std::string out(8, '\0');
  const std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + std::string(data_bytes, '\0');
}

TEST(Safetensors, RoundTripsTensorsAndMetadata) {
  TempDir dir;
  Generator g(1);
  const std::map<std::string, Tensor> tensors{{"a", Tensor::randn({3, 4}, g)},
                                              {"b.bias", Tensor::randn({4}, g, DType::Float64)},
                                              {"labels", Tensor::from_indices({1, -2, 3}, {3})},
                                              {"scalar", Tensor::scalar(7)},
                                              {"empty", Tensor::zeros({0, 5})}};
  save_safetensors(dir / "t.safetensors", tensors, {{"note", "hello"}});
  const auto loaded = load_safetensors(dir / "t.safetensors");
  ASSERT_EQ(loaded.tensors.size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    const Tensor& u = loaded.tensors.at(name);
    EXPECT_EQ(u.shape(), t.shape()) << name;
    EXPECT_EQ(u.dtype(), t.dtype()) << name;
    EXPECT_EQ(u.to_vector(), t.to_vector()) << name;
  }
  EXPECT_EQ(loaded.metadata.at("note"), "hello");
  // The header is what other readers expect: 8-byte length, then JSON, data 8-byte aligned.
  const std::string raw = testing::read_file(dir / "t.safetensors");
  std::uint64_t length = 0;
  for (int i = 0; i < 8; ++i)
    length |= std::uint64_t(static_cast<unsigned char>(raw[i])) << (8 * i);
  EXPECT_EQ(length % 8, 0u);
  const auto header = nlohmann::json::parse(raw.substr(8, length));
  EXPECT_EQ(header["a"]["dtype"], "F32");
  EXPECT_EQ(header["labels"]["dtype"], "I64");
  EXPECT_EQ(header["a"]["shape"], nlohmann::json::array({3, 4}));
}

TEST(Safetensors, RejectsHostileFiles) {
  TempDir dir;
  const auto load = [&](const std::string& contents) {
    const auto path = dir.write("bad.safetensors", contents);
    return error_of([&] { load_safetensors(path); });
  };
  const std::string p = (dir / "bad.safetensors");
  EXPECT_EQ(load("abc"), p + ": 3 bytes is too short for a safetensors file (8-byte header "
                             "length, then the header)");
  EXPECT_EQ(load(std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8) + "{}"),
            p + ": header length 9223372036854775807 is over the 104857600-byte limit");
  EXPECT_NE(load(file_with_header("{not json", 0)).find(p + ": header: not valid JSON"),
            std::string::npos);
  EXPECT_EQ(load(file_with_header("[]", 0)), p + ": header is [], not a JSON object");
  EXPECT_EQ(
      load(file_with_header(R"({"w":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})", 2)),
      p + ": tensor 'w': dtype \"F8_E4M3\" is not supported (lathe reads F32, F64, I64, F16, BF16, "
          "I32, I16, I8, U8, U16, U32, U64, BOOL)");
  EXPECT_EQ(load(file_with_header(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)),
            p + ": tensor 'w': data_offsets [0, 8] span 8 bytes but F32 [3] needs 12");
  EXPECT_EQ(load(file_with_header(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4)),
            p + ": tensor 'w': shape [-1]: size -1 of axis 0 is not a non-negative integer");
  EXPECT_EQ(
      load(file_with_header(
          R"({"w":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8)),
      p + ": tensor 'w': shape [4294967296,4294967296] has more elements than lathe can address");
  EXPECT_EQ(load(file_with_header(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 8)),
            p + ": 8 data bytes but the tensors cover 4 (4 trailing bytes)");
  EXPECT_EQ(load(file_with_header(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4)),
            p + ": tensor 'w': data_offsets end at 8 beyond the 4 data bytes");
  EXPECT_EQ(load(file_with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                  R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                  8)),
            p + ": tensor 'b': data_offsets start at 4 but the previous tensor ends at 8 (an "
                "overlap)");
  EXPECT_EQ(
      load(file_with_header(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})", 4)),
      p + ": tensor 'w': unknown field 'x' (allowed: dtype, shape, data_offsets)");
  EXPECT_EQ(load(file_with_header(R"({"__metadata__":{"k":1}})", 0)),
            p + ": __metadata__ 'k' is 1, not a string");
  EXPECT_EQ(error_of([&] { load_safetensors(dir / "missing.safetensors"); }),
            (dir / "missing.safetensors") + ": cannot open: No such file or directory");
}

TEST(Safetensors, AFailedSaveLeavesTheOldFileIntact) {
  TempDir dir;
  const auto path = dir / "keep.safetensors";
  save_safetensors(path, {{"w", Tensor::ones({2})}});
  const std::string before = testing::read_file(path);
  EXPECT_THROW(save_safetensors(path, {{"__metadata__", Tensor::ones({1})}}), Error);
  EXPECT_EQ(testing::read_file(path), before);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1)
      << "no temporary file is left behind";
}

TEST(Safetensors, SavingIntoAFolderThatIsNotThereSaysSo) {
  TempDir dir;
  const auto path = dir.path() / "missing" / "w.safetensors";
  EXPECT_EQ(error_of([&] {
              save_safetensors(path, {{"w", Tensor::ones({2})}});
            }),
            path.string() + ": cannot write: the folder " + (dir.path() / "missing").string() +
                " does not exist");
  dir.write("file", "");
  const auto under_a_file = dir.path() / "file" / "w.safetensors";
  EXPECT_EQ(error_of([&] {
              save_safetensors(under_a_file, {{"w", Tensor::ones({2})}});
            }),
            under_a_file.string() + ": cannot write: " + (dir.path() / "file").string() +
                " is a file, not a folder");
}

TEST(Bundle, SavesAndRebuildsAModelWithItsPreprocessing) {
  TempDir dir;
  Generator g(4);
  auto model =
      make_sequential(nlohmann::json::parse(
                          R"([{"type":"linear","in":3,"out":5},{"type":"gelu","approximate":"tanh"},
                                       {"type":"linear","in":5,"out":2}])"),
                      g);
  BundleInfo info{model->spec(),
                  Preprocessing::normalize(0.5, 1, 2),
                  {{"task", "classification"}, {"classes", {"no", "yes"}}},
                  {{"test", {{"accuracy", 0.9}}}}};
  save_bundle(dir / "m.safetensors", *model, info);
  const LoadedBundle loaded = load_bundle(dir / "m.safetensors");
  EXPECT_FALSE(loaded.model->is_training());
  EXPECT_EQ(loaded.info.architecture, model->spec());
  EXPECT_EQ(loaded.info.task["classes"][1], "yes");
  EXPECT_EQ(loaded.info.metrics["test"]["accuracy"], 0.9);
  const Tensor x = Tensor::randn({4, 3}, g);
  model->eval();
  EXPECT_EQ(loaded.model->forward(loaded.info.preprocessing.apply(x)).to_vector(),
            model->forward(info.preprocessing.apply(x)).to_vector());
  save_safetensors(dir / "plain.safetensors", {{"w", Tensor::ones({1})}});
  EXPECT_EQ(error_of([&] { load_bundle(dir / "plain.safetensors"); }),
            (dir / "plain.safetensors") +
                ": not a lathe bundle (metadata 'format' is not 'lathe.bundle/1')");
}

}  // namespace
}  // namespace lathe
