// The byte-level entry points (parse_idx, parse_csv, parse_run_config, parse_safetensors,
// parse_bundle) that the path-based readers call and the fuzzers use: same results and same
// messages as reading the file, with `where` in place of the path.

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "lathe/lathe.h"
#include "tests/test_support.h"

namespace lathe {
namespace {

using testing::error_of;
using testing::TempDir;

std::string gzip(const std::string& data) {
  return lathe::testing::zlib_compress(data);
}

const std::string kIdx = std::string("\0\0\x08\x02\0\0\0\x02\0\0\0\x03", 12) + "abcdef";

TEST(ParseInMemory, IdxMatchesTheFileReader) {
  TempDir dir;
  const auto path = dir.write("images.idx", kIdx);
  EXPECT_EQ(parse_idx(kIdx, "mem").to_vector(), read_idx(path).to_vector());
  EXPECT_EQ(parse_idx(gzip(kIdx), "mem").to_vector(), read_idx(path).to_vector());
  EXPECT_EQ(parse_idx_labels(kIdx, "mem").shape(), (Shape{2, 3}));
  EXPECT_EQ(error_of([&] { parse_idx(kIdx.substr(0, 15), "mem"); }),
            "mem: truncated: header says 6 data bytes ([2,3] uint8), file has 3");
  EXPECT_EQ(error_of([&] { parse_idx(gzip(kIdx.substr(0, 15)), "mem"); }),
            "mem: truncated: header says 6 data bytes ([2,3] uint8), file has 3 (after "
            "decompression)");
  EXPECT_EQ(error_of([&] { parse_idx(gzip(kIdx).substr(0, 10), "mem"); }).substr(0, 24),
            "mem: truncated gzip data");
}

TEST(ParseInMemory, CsvMatchesTheFileReader) {
  const std::string csv = "a,y\n1,2\n3,4\n";
  TempDir dir;
  const CsvTable from_file = read_csv(dir.write("t.csv", csv), "y");
  const CsvTable from_memory = parse_csv(csv, "mem", "y");
  EXPECT_EQ(from_memory.features.to_vector(), from_file.features.to_vector());
  EXPECT_EQ(from_memory.targets.to_vector(), from_file.targets.to_vector());
  EXPECT_EQ(parse_csv(gzip(csv), "mem", "y").targets.to_vector(), from_file.targets.to_vector());
  EXPECT_EQ(error_of([] { parse_csv("a,y\n1,x\n", "mem", "y"); }),
            "mem:2:2: column 'y': 'x' is not a number");
}

TEST(ParseInMemory, CsvTargetInTheMiddleSplitsEachRow) {
  const CsvTable table = parse_csv("a,y,b\n1,2,3\n4,5,6\n", "mem", "y");
  EXPECT_EQ(table.feature_names, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(table.features.to_vector(), (std::vector<double>{1, 3, 4, 6}));
  EXPECT_EQ(table.targets.to_vector(), (std::vector<double>{2, 5}));
  // The first bad cell of a row, in column order, is the one reported.
  EXPECT_EQ(error_of([] { parse_csv("a,y,b\n1,x,z\n", "mem", "b"); }),
            "mem:2:2: column 'y': 'x' is not a number");
}

TEST(ParseInMemory, CsvColumnsPicksReordersAndMatchesTheFileReader) {
  const std::string csv = "a,skip,b\n1,text,2\n3,more text,4\n";
  TempDir dir;
  const std::vector<std::string> wanted{"b", "a"};
  const CsvTable from_file = read_csv_columns(dir.write("t.csv", csv), wanted);
  EXPECT_EQ(from_file.feature_names, wanted);
  EXPECT_EQ(from_file.features.shape(), (Shape{2, 2}));
  EXPECT_EQ(from_file.features.to_vector(), (std::vector<double>{2, 1, 4, 3}));
  EXPECT_EQ(parse_csv_columns(gzip(csv), "mem", wanted).features.to_vector(),
            from_file.features.to_vector());
  EXPECT_EQ(parse_csv_columns("a,b\n1,2\n", "mem", {}).feature_names,
            (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(error_of([] { parse_csv_columns("a,b\n1,2\n", "mem", {"c"}); }),
            "mem: column 'c' not found; columns are: a, b");
  EXPECT_EQ(error_of([] { parse_csv_columns("a,a\n1,2\n", "mem", {"a"}); }),
            "mem:1:2: duplicate column name 'a' (also column 1)");
  // A name twice among columns nothing reads is no error.
  EXPECT_EQ(parse_csv_columns("x,b,x\n1,2,3\n", "mem", {"b"}).features.to_vector(),
            (std::vector<double>{2}));
  EXPECT_EQ(error_of([] { parse_csv_columns("a,b\n1,2\n\n3,4\n", "mem", {"a"}); }),
            "mem:3: empty line between data rows; expected 2 cells");
}

TEST(ParseInMemory, ConfigMatchesTheFileReader) {
  const std::string toml = R"([data]
format = "csv"
path = "houses.csv"
target = "medv"
[model]
layers = [{ type = "linear", in = 2, out = 1 }]
)";
  TempDir dir;
  const auto path = dir.write("c.toml", toml);
  const RunConfig from_file = load_run_config(path, {"trainer.epochs=2"});
  const RunConfig from_memory =
      parse_run_config(toml, "mem.toml", dir.path(), {"trainer.epochs=2"});
  EXPECT_EQ(from_memory.to_json(), from_file.to_json());
  EXPECT_EQ(from_memory.source, "mem.toml");
  EXPECT_EQ(from_file.source, path);
  EXPECT_EQ(from_memory.data.path, dir.path() / "houses.csv");
  EXPECT_EQ(error_of([] { parse_run_config("[data]\nformat = 1\n", "mem.toml", "/"); }),
            "mem.toml:2: data.format must be a string");
  EXPECT_EQ(error_of([] { parse_run_config("[data", "mem.toml", "/"); }).substr(0, 13),
            "mem.toml:1:6:");
}

}  // namespace
}  // namespace lathe
