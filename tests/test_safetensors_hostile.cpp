// safetensors and bundles from others, and from attackers: every malformed kind the reader must
// reject (with the file, the tensor and the field in the message) before allocating, the dtypes
// it converts, a file byte for byte as the Hugging Face library writes it, and bundles whose
// architecture does not match their tensors. Each regression test for a fuzzer finding says so.
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "lathe/lathe.h"
#include "tests/test_support.h"

namespace lathe {
namespace {

using testing::error_of;
using testing::TempDir;

const std::string kWhere = "f.safetensors";

std::string le64(std::uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out;
}

// A file: the header's length, the header as given (no padding), then `data`.
std::string file_of(const std::string& header, const std::string& data = "") {
  return le64(header.size()) + header + data;
}

std::string error_parsing(const std::string& bytes) {
  return error_of([&] { parse_safetensors(bytes, kWhere); });
}

// The error for a one-tensor file whose entry for "w" is `entry`, with `data_bytes` zero bytes.
std::string entry_error(const std::string& entry, std::size_t data_bytes = 4) {
  return error_parsing(file_of(R"({"w":)" + entry + "}", std::string(data_bytes, '\0')));
}

std::string bytes_of(const void* data, std::size_t size) {
  return std::string(static_cast<const char*>(data), size);
}

TEST(SafetensorsHostile, LengthFieldAndHeaderSize) {
  EXPECT_EQ(error_parsing("abc"), kWhere +
                                      ": 3 bytes is too short for a safetensors file (8-byte "
                                      "header length, then the header)");
  EXPECT_EQ(error_parsing(le64(100 * 1024 * 1024 + 1) + "{}"),
            kWhere + ": header length 104857601 is over the 104857600-byte limit");
  EXPECT_EQ(error_parsing(le64(std::numeric_limits<std::uint64_t>::max()) + "{}"),
            kWhere + ": header length 18446744073709551615 is over the 104857600-byte limit");
  EXPECT_EQ(error_parsing(le64(100) + "{}"),
            kWhere + ": header length 100 but only 2 bytes follow the length field");
  EXPECT_EQ(error_parsing(le64(0)), kWhere +
                                        ": header: not valid JSON (byte 1): parse error at line 1, "
                                        "column 1: syntax error while parsing value - unexpected "
                                        "end of input; expected '[', '{', or a literal");
}

TEST(SafetensorsHostile, HeaderMustBeUtf8Json) {
  EXPECT_TRUE(error_parsing(file_of("{not json")).starts_with(kWhere + ": header: not valid JSON"));
  EXPECT_EQ(error_parsing(file_of("[]")), kWhere + ": header is [], not a JSON object");
  EXPECT_EQ(error_parsing(file_of("7")), kWhere + ": header is 7, not a JSON object");
  // Invalid UTF-8 in a tensor name, in a metadata value, an overlong encoding, an encoded
  // surrogate, and an unpaired surrogate escape: all rejected, and the message shows the bad
  // byte escaped rather than passing it on.
  for (const std::string header :
       {"{\"w\xff\":{}}", "{\"__metadata__\":{\"k\":\"\xc3\"}}", "{\"\xc0\xaf\":{}}",
        "{\"\xed\xa0\x80\":{}}", R"({"\ud800":{}})"}) {
    const std::string message = error_parsing(file_of(header));
    EXPECT_TRUE(message.starts_with(kWhere + ": header: not valid JSON (byte ")) << message;
    for (char c : message) EXPECT_LT(static_cast<unsigned char>(c), 0x80) << message;
  }
  EXPECT_NE(error_parsing(file_of("{\"w\xff\":{}}")).find("ill-formed UTF-8 byte"),
            std::string::npos);
  EXPECT_NE(error_parsing(file_of("{\"w\xff\":{}}")).find("\\xff"), std::string::npos);
  // Trailing garbage after the JSON value (other than the padding spaces).
  EXPECT_TRUE(error_parsing(file_of("{}  x")).starts_with(kWhere + ": header: not valid JSON"));
}

TEST(SafetensorsHostile, DuplicateKeysAreErrorsNotLastOneWins) {
  const std::string w = R"({"dtype":"F32","shape":[1],"data_offsets":[0,4]})";
  EXPECT_EQ(error_parsing(file_of(R"({"w":)" + w + R"(,"w":)" + w + "}", std::string(4, '\0'))),
            kWhere + ": header: key 'w' appears twice in the object at the top level");
  EXPECT_EQ(entry_error(R"({"dtype":"F32","dtype":"F64","shape":[1],"data_offsets":[0,4]})"),
            kWhere + ": header: key 'dtype' appears twice in the object at '/w'");
  EXPECT_EQ(error_parsing(file_of(R"({"__metadata__":{"k":"a","k":"b"}})")),
            kWhere + ": header: key 'k' appears twice in the object at '/__metadata__'");
  EXPECT_EQ(error_parsing(file_of(R"({"__metadata__":{},"__metadata__":{}})")),
            kWhere + ": header: key '__metadata__' appears twice in the object at the top level");
}

// Regression (stack overflow): the old reader put value["shape"].dump() into its message, and
// dump() recurses once per nesting level, so a 2 MB header of nested arrays crashed it.
TEST(SafetensorsHostile, DeeplyNestedHeaderIsRejectedWithoutRecursion) {
  const std::size_t depth = 1'000'000;
  const std::string shape = std::string(depth, '[') + std::string(depth, ']');
  EXPECT_EQ(entry_error(R"({"dtype":"F32","shape":)" + shape + R"(,"data_offsets":[0,4]})"),
            kWhere + ": header: JSON nests deeper than 3 levels at '/w/shape/[]'");
  EXPECT_EQ(error_parsing(file_of(std::string(depth, '[') + std::string(depth, ']'))),
            kWhere + ": header: JSON nests deeper than 3 levels at '/[]/[]/[]'");
}

TEST(SafetensorsHostile, MetadataMustBeAnObjectOfStrings) {
  EXPECT_EQ(error_parsing(file_of(R"({"__metadata__":["a"]})")),
            kWhere + ": __metadata__ is [\"a\"], not an object of strings");
  EXPECT_EQ(error_parsing(file_of(R"({"__metadata__":null})")),
            kWhere + ": __metadata__ is null, not an object of strings");
  EXPECT_EQ(error_parsing(file_of(R"({"__metadata__":{"k":1}})")),
            kWhere + ": __metadata__ 'k' is 1, not a string");
  EXPECT_EQ(error_parsing(file_of(R"({"__metadata__":{"k":{"a":"b"}}})")),
            kWhere + ": __metadata__ 'k' is {\"a\":\"b\"}, not a string");
  EXPECT_EQ(error_parsing(file_of(R"({"__metadata__":{"k\n":true}})")),
            kWhere + ": __metadata__ 'k\\x0a' is true, not a string");
  // Any UTF-8 text is a valid value, including escapes of control characters.
  const auto contents =
      parse_safetensors(file_of(R"({"__metadata__":{"k":"\u00e9\u0000"}})"), kWhere);
  EXPECT_EQ(contents.metadata.at("k"), std::string("\xc3\xa9\0", 3));
}

TEST(SafetensorsHostile, EntryFields) {
  EXPECT_EQ(entry_error("5"), kWhere +
                                  ": tensor 'w': the entry is 5, not an object with dtype, shape "
                                  "and data_offsets");
  EXPECT_EQ(entry_error(R"({"shape":[1],"data_offsets":[0,4]})"),
            kWhere + ": tensor 'w': missing field 'dtype'");
  EXPECT_EQ(entry_error(R"({"dtype":"F32","data_offsets":[0,4]})"),
            kWhere + ": tensor 'w': missing field 'shape'");
  EXPECT_EQ(entry_error(R"({"dtype":"F32","shape":[1]})"),
            kWhere + ": tensor 'w': missing field 'data_offsets'");
  EXPECT_EQ(entry_error(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1})"),
            kWhere + ": tensor 'w': unknown field 'x' (allowed: dtype, shape, data_offsets)");
  // A name with control characters is shown escaped.
  EXPECT_EQ(error_parsing(file_of(R"({"a\nb":{"dtype":"F32"}})")),
            kWhere + ": tensor 'a\\x0ab': missing field 'shape'");
}

TEST(SafetensorsHostile, Dtypes) {
  EXPECT_EQ(entry_error(R"({"dtype":5,"shape":[1],"data_offsets":[0,4]})"),
            kWhere + ": tensor 'w': dtype is 5, not a string");
  const std::string supported =
      " is not supported (lathe reads F32, F64, I64, F16, BF16, I32, I16, I8, U8, U16, U32, U64, "
      "BOOL)";
  EXPECT_EQ(entry_error(R"({"dtype":"F8_E5M2","shape":[4],"data_offsets":[0,4]})"),
            kWhere + ": tensor 'w': dtype \"F8_E5M2\"" + supported);
  EXPECT_EQ(entry_error(R"({"dtype":"f32","shape":[1],"data_offsets":[0,4]})"),
            kWhere + ": tensor 'w': dtype \"f32\"" + supported);
  EXPECT_EQ(entry_error(R"({"dtype":"C64","shape":[1],"data_offsets":[0,8]})", 8),
            kWhere + ": tensor 'w': dtype \"C64\"" + supported);
}

TEST(SafetensorsHostile, Shapes) {
  const auto shape_error = [](const std::string& shape, std::size_t bytes = 4) {
    return entry_error(R"({"dtype":"F32","shape":)" + shape + R"(,"data_offsets":[0,)" +
                           std::to_string(bytes) + "]}",
                       bytes);
  };
  EXPECT_EQ(shape_error("3"), kWhere + ": tensor 'w': shape is 3, not an array");
  EXPECT_EQ(shape_error("[-1]"), kWhere +
                                     ": tensor 'w': shape [-1]: size -1 of axis 0 is not a "
                                     "non-negative integer");
  EXPECT_EQ(shape_error("[1,2.0]"), kWhere +
                                        ": tensor 'w': shape [1,2.0]: size 2.0 of axis 1 is not a "
                                        "non-negative integer");
  EXPECT_EQ(shape_error("[1e3]"), kWhere +
                                      ": tensor 'w': shape [1000.0]: size 1000.0 of axis 0 is not "
                                      "a non-negative integer");
  EXPECT_EQ(shape_error(R"(["2"])"), kWhere +
                                         ": tensor 'w': shape [\"2\"]: size \"2\" of axis 0 is "
                                         "not a non-negative integer");
  EXPECT_EQ(shape_error("[-0]"), kWhere +
                                     ": tensor 'w': shape [0]: size 0 of axis 0 is not a "
                                     "non-negative integer");
  // Beyond uint64: nlohmann reads it as a float.
  EXPECT_EQ(shape_error("[18446744073709551616]"),
            kWhere +
                ": tensor 'w': shape [1.8446744073709552e+19]: size 1.8446744073709552e+19 of "
                "axis 0 is not a non-negative integer");
  EXPECT_EQ(shape_error("[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]"),
            kWhere + ": tensor 'w': shape has 17 axes, more than 16");
  EXPECT_EQ(shape_error("[4294967296,4294967296]"),
            kWhere +
                ": tensor 'w': shape [4294967296,4294967296] has more elements than lathe "
                "can address");
  EXPECT_EQ(shape_error("[18446744073709551615]"),
            kWhere +
                ": tensor 'w': shape [18446744073709551615] has more elements than lathe "
                "can address");
  // A zero size does not excuse the others: their product must fit too.
  EXPECT_EQ(shape_error("[0,4611686018427387904,4611686018427387904]", 0),
            kWhere +
                ": tensor 'w': shape [0,4611686018427387904,4611686018427387904] has more "
                "elements than lathe can address");
}

TEST(SafetensorsHostile, Offsets) {
  const auto offsets_error = [](const std::string& offsets) {
    return entry_error(R"({"dtype":"F32","shape":[1],"data_offsets":)" + offsets + "}");
  };
  const std::string not_two = " not two non-negative integers [begin, end]";
  EXPECT_EQ(offsets_error("4"), kWhere + ": tensor 'w': data_offsets is 4," + not_two);
  EXPECT_EQ(offsets_error("[0,4,8]"), kWhere + ": tensor 'w': data_offsets is [0,4,8]," + not_two);
  EXPECT_EQ(offsets_error("[-4,0]"), kWhere + ": tensor 'w': data_offsets is [-4,0]," + not_two);
  EXPECT_EQ(offsets_error("[0.0,4]"), kWhere + ": tensor 'w': data_offsets is [0.0,4]," + not_two);
  EXPECT_EQ(offsets_error("[0,4e0]"), kWhere + ": tensor 'w': data_offsets is [0,4.0]," + not_two);
  EXPECT_EQ(offsets_error(R"(["0",4])"),
            kWhere + ": tensor 'w': data_offsets is [\"0\",4]," + not_two);
  EXPECT_EQ(offsets_error("[4,0]"), kWhere +
                                        ": tensor 'w': data_offsets [4, 0] end before they "
                                        "begin");
  EXPECT_EQ(offsets_error("[0,8]"),
            kWhere + ": tensor 'w': data_offsets [0, 8] span 8 bytes but F32 [1] needs 4");
  EXPECT_EQ(offsets_error("[18446744073709551611,18446744073709551615]"),
            kWhere +
                ": tensor 'w': data_offsets start at 18446744073709551611 but the previous tensor "
                "ends at 0 (a gap)");
}

TEST(SafetensorsHostile, OffsetsMustTileTheDataExactly) {
  const auto tiling_error = [](const std::string& a, const std::string& b, std::size_t data) {
    return error_parsing(file_of(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":)" + a +
                                     R"(},"b":{"dtype":"F32","shape":[1],"data_offsets":)" + b +
                                     "}}",
                                 std::string(data, '\0')));
  };
  EXPECT_EQ(tiling_error("[0,4]", "[4,8]", 8), "(no error)");
  EXPECT_EQ(tiling_error("[4,8]", "[0,4]", 8), "(no error)") << "any order in the header";
  EXPECT_EQ(
      tiling_error("[0,4]", "[8,12]", 12),
      kWhere + ": tensor 'b': data_offsets start at 8 but the previous tensor ends at 4 (a gap)");
  EXPECT_EQ(
      tiling_error("[4,8]", "[8,12]", 12),
      kWhere + ": tensor 'a': data_offsets start at 4 but the previous tensor ends at 0 (a gap)");
  EXPECT_EQ(tiling_error("[0,4]", "[0,4]", 8),
            kWhere +
                ": tensor 'b': data_offsets start at 0 but the previous tensor ends at 4 (an "
                "overlap)");
  EXPECT_EQ(tiling_error("[0,4]", "[4,8]", 6),
            kWhere + ": tensor 'b': data_offsets end at 8 beyond the 6 data bytes");
  EXPECT_EQ(tiling_error("[0,4]", "[4,8]", 9),
            kWhere + ": 9 data bytes but the tensors cover 8 (1 trailing bytes)");
  EXPECT_EQ(error_parsing(file_of("{}", "x")),
            kWhere + ": 1 data bytes but the tensors cover 0 (1 trailing bytes)");
}

TEST(SafetensorsHostile, ZeroSizeTensors) {
  const std::string header = R"({"empty_first":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},)"
                             R"("w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                             R"("empty_last":{"dtype":"I64","shape":[3,0,2],"data_offsets":[4,4]},)"
                             R"("scalar_free":{"dtype":"F64","shape":[0,0],"data_offsets":[4,4]}})";
  const float one = 1;
  const auto contents = parse_safetensors(file_of(header, bytes_of(&one, 4)), kWhere);
  EXPECT_EQ(contents.tensors.at("empty_first").shape(), (Shape{0}));
  EXPECT_EQ(contents.tensors.at("empty_last").shape(), (Shape{3, 0, 2}));
  EXPECT_EQ(contents.tensors.at("empty_last").dtype(), DType::Int64);
  EXPECT_EQ(contents.tensors.at("w").item(), 1.0);
  // But not inside another tensor's bytes.
  EXPECT_EQ(error_parsing(file_of(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                  R"("e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
                                  std::string(8, '\0'))),
            kWhere +
                ": tensor 'e': data_offsets start at 4 but the previous tensor ends at 8 (an "
                "overlap)");
}

TEST(SafetensorsHostile, OtherDtypesAreConverted) {
  // F16: 1, -2, 65504 (max), 2^-24 (smallest subnormal), -0, inf, NaN.
  const std::uint16_t f16[] = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x8000, 0x7c00, 0x7e00};
  // BF16: 1, -2.5, 3.3895e38 (max).
  const std::uint16_t bf16[] = {0x3f80, 0xc020, 0x7f7f};
  const std::int32_t i32[] = {-2147483647 - 1, 7};
  const std::int16_t i16[] = {-32768, 32767};
  const std::int8_t i8[] = {-128, 127};
  const std::uint8_t u8[] = {0, 255};
  const std::uint16_t u16[] = {65535};
  const std::uint32_t u32[] = {4294967295u};
  const std::uint64_t u64[] = {9223372036854775807u};
  const std::uint8_t boolean[] = {1, 0};
  std::string header = "{", data;
  const auto add = [&](const std::string& name, const std::string& dtype, std::size_t count,
                       const void* values, std::size_t element_size) {
    const std::size_t begin = data.size();
    data += bytes_of(values, count * element_size);
    header += fmt::format(R"({}"{}":{{"dtype":"{}","shape":[{}],"data_offsets":[{},{}]}})",
                          header.size() > 1 ? "," : "", name, dtype, count, begin, data.size());
  };
  add("f16", "F16", 7, f16, 2);
  add("bf16", "BF16", 3, bf16, 2);
  add("i32", "I32", 2, i32, 4);
  add("i16", "I16", 2, i16, 2);
  add("i8", "I8", 2, i8, 1);
  add("u8", "U8", 2, u8, 1);
  add("u16", "U16", 1, u16, 2);
  add("u32", "U32", 1, u32, 4);
  add("u64", "U64", 1, u64, 8);
  add("bool", "BOOL", 2, boolean, 1);
  header += "}";
  const auto t = parse_safetensors(file_of(header, data), kWhere).tensors;

  EXPECT_EQ(t.at("f16").dtype(), DType::Float32);
  const float* h = t.at("f16").data<float>();
  EXPECT_EQ(h[0], 1.0f);
  EXPECT_EQ(h[1], -2.0f);
  EXPECT_EQ(h[2], 65504.0f);
  EXPECT_EQ(h[3], 0x1p-24f);
  EXPECT_EQ(std::bit_cast<std::uint32_t>(h[4]), 0x80000000u) << "negative zero";
  EXPECT_EQ(h[5], std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(h[6]));
  EXPECT_EQ(t.at("bf16").to_vector(), (std::vector<double>{1.0, -2.5, 0x1.fep127}));
  for (const char* name : {"i32", "i16", "i8", "u8", "u16", "u32", "u64", "bool"})
    EXPECT_EQ(t.at(name).dtype(), DType::Int64) << name;
  const auto ints = [&](const char* name) {
    const Tensor& x = t.at(name);
    return std::vector<std::int64_t>(x.data<std::int64_t>(), x.data<std::int64_t>() + x.numel());
  };
  EXPECT_EQ(ints("i32"), (std::vector<std::int64_t>{-2147483648LL, 7}));
  EXPECT_EQ(ints("i16"), (std::vector<std::int64_t>{-32768, 32767}));
  EXPECT_EQ(ints("i8"), (std::vector<std::int64_t>{-128, 127}));
  EXPECT_EQ(ints("u8"), (std::vector<std::int64_t>{0, 255}));
  EXPECT_EQ(ints("u16"), (std::vector<std::int64_t>{65535}));
  EXPECT_EQ(ints("u32"), (std::vector<std::int64_t>{4294967295LL}));
  EXPECT_EQ(ints("u64"), (std::vector<std::int64_t>{9223372036854775807LL}));
  EXPECT_EQ(ints("bool"), (std::vector<std::int64_t>{1, 0}));

  // Values that do not fit what lathe loads them as name the tensor and the element.
  const std::uint64_t too_big[] = {1, 9223372036854775808u};
  EXPECT_EQ(error_parsing(file_of(R"({"u":{"dtype":"U64","shape":[2],"data_offsets":[0,16]}})",
                                  bytes_of(too_big, 16))),
            kWhere +
                ": tensor 'u': element 1 is 9223372036854775808, beyond the int64 range lathe "
                "loads U64 as");
  EXPECT_EQ(error_parsing(file_of(R"({"b":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}})",
                                  std::string("\x01\x00\x02", 3))),
            kWhere + ": tensor 'b': element 2 is 2, but a BOOL byte is 0 or 1");
}

// A file as the Hugging Face safetensors library (0.4, Rust serializer) writes it for
// save_file({"embed.weight": float16 [2,3], "lm_head.bias": float32 [2], "ids": int64 [2]},
// metadata={"format": "pt"}): tensors sorted by dtype (descending in its Dtype enum: I64 before
// F32 before F16), then name;
// "__metadata__" first; the JSON compact, padded with spaces to a multiple of 8 bytes; data in
// header order. Built here byte by byte: neither the `safetensors` Python package nor torch is
// installed on this machine (and no registry that has them is reachable), so the bytes follow
// the library's serializer (safetensors/src/tensor.rs: prepare, serialize) instead.
TEST(SafetensorsHostile, ReadsAFileAsTheHuggingFaceLibraryWritesIt) {
  const std::string json =
      R"({"__metadata__":{"format":"pt"},)"
      R"("ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},)"
      R"("lm_head.bias":{"dtype":"F32","shape":[2],"data_offsets":[16,24]},)"
      R"("embed.weight":{"dtype":"F16","shape":[2,3],"data_offsets":[24,36]}})";
  std::string header = json;
  header.append((8 - header.size() % 8) % 8, ' ');
  ASSERT_NE(header.size(), json.size()) << "the test should exercise the padding";
  const std::int64_t ids[] = {3, -1};
  const float bias[] = {0.5f, -0.25f};
  const std::uint16_t embed[] = {0x3c00, 0x4000, 0x4200, 0xbc00, 0x0000, 0x3800};  // 1 2 3 -1 0 .5
  const std::string file =
      le64(header.size()) + header + bytes_of(ids, 16) + bytes_of(bias, 8) + bytes_of(embed, 12);

  TempDir dir;
  const auto path = dir.write("model.safetensors", file);
  const SafetensorsContents contents = load_safetensors(path);
  EXPECT_EQ(contents.metadata, (std::map<std::string, std::string>{{"format", "pt"}}));
  ASSERT_EQ(contents.tensors.size(), 3u);
  EXPECT_EQ(contents.tensors.at("ids").to_vector(), (std::vector<double>{3, -1}));
  EXPECT_EQ(contents.tensors.at("lm_head.bias").to_vector(), (std::vector<double>{0.5, -0.25}));
  EXPECT_EQ(contents.tensors.at("embed.weight").shape(), (Shape{2, 3}));
  EXPECT_EQ(contents.tensors.at("embed.weight").to_vector(),
            (std::vector<double>{1, 2, 3, -1, 0, 0.5}));

  // Without __metadata__ (save_file without metadata), and with it last.
  const std::string bare = R"({"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}})";
  EXPECT_TRUE(
      parse_safetensors(file_of(bare + "      ", bytes_of(ids, 16)), kWhere).metadata.empty());
  const std::string last =
      R"({"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},"__metadata__":{"a":"b"}})";
  EXPECT_EQ(parse_safetensors(file_of(last, bytes_of(ids, 16)), kWhere).metadata.at("a"), "b");

  // Errors from a file name the path.
  const auto bad = dir.write("bad.safetensors", file.substr(0, file.size() - 1));
  EXPECT_EQ(error_of([&] { load_safetensors(bad); }),
            bad.string() +
                ": tensor 'embed.weight': data_offsets end at 36 beyond the 35 data "
                "bytes");
  EXPECT_EQ(error_of([&] { load_safetensors(dir.path()); }),
            dir.path().string() + ": cannot read: Is a directory");
}

// ---- Bundles whose architecture does not match their tensors ----

class BundleMismatch : public ::testing::Test {
 protected:
  // A bundle of the 3-5-2 MLP whose tensors are `tensors` and architecture `architecture`.
  std::string bundle(const std::map<std::string, Tensor>& tensors,
                     const nlohmann::json& architecture) {
    std::map<std::string, std::string> metadata{
        {"format", "lathe.bundle/1"},
        {"lathe.architecture", architecture.dump()},
        {"lathe.preprocessing", Preprocessing::none().to_json().dump()},
        {"lathe.task", R"({"task":"classification"})"},
        {"lathe.metrics", "{}"}};
    save_safetensors(dir_ / "m.safetensors", tensors, metadata);
    return dir_ / "m.safetensors";
  }
  std::string load_error(const std::map<std::string, Tensor>& tensors,
                         const nlohmann::json& architecture) {
    const std::string path = bundle(tensors, architecture);
    return error_of([&] { load_bundle(path); });
  }

  void SetUp() override {
    Generator g(0);
    model_ = make_sequential(nlohmann::json::parse(R"([{"type":"linear","in":3,"out":5},
        {"type":"relu"},{"type":"linear","in":5,"out":2}])"),
                             g);
    tensors_ = model_->state_dict();
    architecture_ = model_->spec();
  }

  TempDir dir_;
  std::shared_ptr<Sequential> model_;
  std::map<std::string, Tensor> tensors_;
  nlohmann::json architecture_;
};

TEST_F(BundleMismatch, AValidBundleLoads) {
  EXPECT_EQ(load_error(tensors_, architecture_), "(no error)");
}

TEST_F(BundleMismatch, MissingExtraAndMisshapenTensors) {
  const std::string p = dir_ / "m.safetensors";
  auto missing = tensors_;
  missing.erase("2.bias");
  EXPECT_EQ(load_error(missing, architecture_),
            p + ": tensor '2.bias' of shape [2] that the architecture needs is missing");
  auto extra = tensors_;
  extra["3.weight"] = Tensor::zeros({1});
  EXPECT_EQ(load_error(extra, architecture_),
            p + ": tensor '3.weight' ([1]) is not part of the architecture");
  auto wrong = tensors_;
  wrong["0.weight"] = Tensor::zeros({3, 5});
  EXPECT_EQ(load_error(wrong, architecture_),
            p + ": tensor '0.weight': shape [3,5] but the architecture needs [5,3]");
  auto f64 = tensors_;
  f64["0.bias"] = Tensor::zeros({5}, DType::Float64);
  EXPECT_EQ(load_error(f64, architecture_),
            p + ": tensor '0.bias': dtype float64 but model weights are float32 (F32, F16 or BF16 "
                "in the file)");
  // An architecture without biases for the same tensors.
  auto no_bias = architecture_;
  no_bias["layers"][0]["bias"] = false;
  EXPECT_EQ(load_error(tensors_, no_bias),
            p + ": tensor '0.bias' ([5]) is not part of the architecture");
}

// Regression: the old loader built the model before comparing it with the tensors, so a bundle
// of a few bytes could make it allocate any amount (here 4 * 10^12 bytes).
TEST_F(BundleMismatch, AHugeArchitectureIsRejectedBeforeAllocating) {
  auto huge = architecture_;
  huge["layers"][0]["in"] = 1000000;
  huge["layers"][0]["out"] = 1000000;
  const std::string p = dir_ / "m.safetensors";
  EXPECT_EQ(load_error(tensors_, huge),
            p + ": tensor '0.bias': shape [5] but the architecture needs [1000000]");
}

TEST_F(BundleMismatch, MalformedArchitectures) {
  const std::string p = dir_ / "m.safetensors";
  const std::string prefix = p + ": metadata 'lathe.architecture': ";
  EXPECT_EQ(load_error(tensors_, {{"type", "sequential"}, {"layers", nlohmann::json::array()}}),
            prefix + "a sequential model needs a non-empty list \"layers\"");
  // Regression: make_layer used spec.value("type", ""), which throws nlohmann's type_error (not
  // a lathe::Error) when "type" is not a string.
  // The built-in types in their order; types a test of this process registered (test_registry)
  // may follow them.
  const std::string builtin =
      "a layer needs a \"type\" (one of: linear, conv2d, max_pool2d, avg_pool2d, global_avg_pool, "
      "batch_norm1d, batch_norm2d, reshape, flatten, dropout, relu, leaky_relu, sigmoid, tanh, "
      "gelu, gpt";
  const std::string loaded = load_error(tensors_, {{"type", 5}});
  EXPECT_TRUE(loaded.starts_with(prefix + builtin)) << loaded;
  const std::string made = error_of([] {
    Generator g(0);
    make_layer({{"type", 5}}, g);
  });
  EXPECT_TRUE(made.starts_with(builtin)) << made;
  auto negative = architecture_;
  negative["layers"][2]["out"] = -2;
  EXPECT_EQ(load_error(tensors_, negative),
            prefix + "layer 2: linear 'out' is -2, not a positive integer");
  auto unknown = architecture_;
  unknown["layers"][1]["type"] = "conv9d";
  EXPECT_EQ(load_error(tensors_, unknown).substr(0, prefix.size() + 38),
            prefix + "layer 1: unknown layer type 'conv9d'; ");
  nlohmann::json deep = architecture_;
  for (int i = 0; i < 20; ++i) deep = {{"type", "sequential"}, {"layers", {deep}}};
  EXPECT_EQ(load_error(tensors_, deep).substr(0, prefix.size() + 10), prefix + "layer 0.0.");
  const std::string path = bundle(tensors_, architecture_);
  // Metadata that is not JSON, or too deep, or not an object.
  auto metadata_error = [&](const std::string& key, const std::string& value) {
    std::map<std::string, std::string> metadata{
        {"format", "lathe.bundle/1"},
        {"lathe.architecture", architecture_.dump()},
        {"lathe.preprocessing", Preprocessing::none().to_json().dump()},
        {"lathe.task", "{}"},
        {"lathe.metrics", "{}"}};
    metadata[key] = value;
    save_safetensors(path, tensors_, metadata);
    return error_of([&] { load_bundle(path); });
  };
  EXPECT_EQ(
      metadata_error("lathe.task", "{"),
      p + ": metadata 'lathe.task': not valid JSON (byte 2): parse error at line 1, column 2: "
          "syntax error while parsing object key - unexpected end of input; expected string "
          "literal");
  EXPECT_EQ(metadata_error("lathe.task", "[1]"),
            p + ": metadata 'lathe.task' is [1], not a JSON object");
  std::string place;
  for (int i = 0; i < 64; ++i) place += "/[]";
  EXPECT_EQ(metadata_error("lathe.metrics", std::string(100, '[') + std::string(100, ']')),
            p + ": metadata 'lathe.metrics': JSON nests deeper than 64 levels at '" + place + "'");
  EXPECT_EQ(metadata_error("lathe.architecture", R"({"type":"relu","type":"relu"})"),
            p + ": metadata 'lathe.architecture': key 'type' appears twice in the object at the "
                "top level");
  EXPECT_TRUE(metadata_error("lathe.preprocessing", R"({"scale":"x"})")
                  .starts_with(p + ": metadata 'lathe.preprocessing': preprocessing: malformed"));
}

// Every layer type the registry knows loads from a bundle: the tensors each type says it holds
// (LayerType::tensor_shapes, or the built module's) are the ones it saves.
TEST(BundleLayerTypes, EveryRegisteredTypeRoundTrips) {
  TempDir dir;
  for (const LayerType& type : layer_types()) {
    const nlohmann::json spec =
        type.example.empty() ? nlohmann::json{{"type", type.name}} : type.example;
    Generator g(0);
    auto model = make_sequential(nlohmann::json::array({spec}), g);
    BundleInfo info{model->spec(), Preprocessing::none(), nlohmann::json::object(),
                    nlohmann::json::object()};
    save_bundle(dir / "m.safetensors", *model, info);
    EXPECT_EQ(error_of([&] { load_bundle(dir / "m.safetensors"); }), "(no error)") << type.name;
  }
}

// A hostile CNN bundle may declare convolution geometry whose activations need gigabytes for one
// image: the reader traces the shapes from the task's input shape and refuses it at load, before
// building anything (not as an out-of-memory kill at the first request).
TEST(BundleHostile, ConvolutionGeometryIsBoundedAgainstTheInputShape) {
  TempDir dir;
  const auto write = [&](const nlohmann::json& conv) {
    Generator g(0);
    auto model = make_sequential(
        nlohmann::json::array({{{"type", "reshape"}, {"shape", {1, 28, 28}}}, conv}), g);
    save_bundle(dir / "cnn.safetensors", *model,
                {model->spec(),
                 Preprocessing::none(),
                 {{"task", "classification"}, {"input_shape", {28, 28}}},
                 {}});
    return error_of([&] { load_bundle(dir / "cnn.safetensors"); });
  };
  const std::string p = dir / "cnn.safetensors";
  EXPECT_EQ(write({{"type", "conv2d"}, {"in", 1}, {"out", 2}, {"kernel_size", 1}, {"padding", 3}}),
            "(no error)");
  EXPECT_EQ(
      write({{"type", "conv2d"}, {"in", 1}, {"out", 1}, {"kernel_size", 1}, {"padding", 20000}}),
      p + ": metadata 'lathe.architecture': layer 1 (counting leaf layers) maps one example "
          "of shape [28,28] to 1602240784 values ([1,40028,40028]), more than the 67108864 "
          "a bundle may ask for");
  EXPECT_EQ(
      write({{"type", "conv2d"}, {"in", 1}, {"out", 1}, {"kernel_size", 3}, {"dilation", 1000000}}),
      p + ": metadata 'lathe.architecture' does not fit input_shape [28,28]: layer 1: "
          "conv2d: a window of 2000001 (kernel_size 3, dilation 1000000) does not fit the "
          "height 28 with padding 0");
}

// The fuzzer's seed bundle (written by fuzz/make_seeds.py) stays a valid bundle.
TEST(BundleHostile, TheFuzzSeedBundleLoads) {
  const LoadedBundle bundle =
      load_bundle(LATHE_SOURCE_DIR "/fuzz/corpus/fuzz_safetensors/bundle_mlp.safetensors");
  EXPECT_EQ(bundle.model->forward(Tensor::zeros({2, 3})).shape(), (Shape{2, 2}));
  EXPECT_EQ(bundle.info.task["classes"][1], "yes");
}

TEST(BundleHostile, ParseBundleFromMemoryMatchesTheFile) {
  TempDir dir;
  Generator g(0);
  auto model = make_sequential(nlohmann::json::parse(R"([{"type":"linear","in":2,"out":1}])"), g);
  save_bundle(
      dir / "m.safetensors", *model,
      {model->spec(), Preprocessing::none(), nlohmann::json::object(), nlohmann::json::object()});
  const std::string bytes = testing::read_file(dir / "m.safetensors");
  const LoadedBundle loaded = parse_bundle(bytes, "memory");
  EXPECT_EQ(loaded.model->state_dict().at("0.weight").to_vector(),
            model->state_dict().at("0.weight").to_vector());
  EXPECT_EQ(error_of([&] { parse_bundle(bytes.substr(0, 20), "memory"); }).substr(0, 8),
            "memory: ");
}

}  // namespace
}  // namespace lathe
