// Tables: the text-cell CSV reader and its dialects, the held-out split, SHA-256, and the
// TableEncoding (type inference, one-hot, imputation, indicators, labels) with exact messages, on
// small tables written here and on the Palmer penguins when scripts/setup.sh has extracted them.
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "lathe/data.h"
#include "lathe/error.h"
#include "lathe/table.h"
#include "tests/test_support.h"

namespace lathe {
namespace {

using nlohmann::json;
using testing::error_of;
using testing::TempDir;

std::vector<std::string> column_text(const RawTable& table, std::size_t column) {
  std::vector<std::string> out;
  for (std::size_t r = 0; r < table.columns[column].text.size(); ++r)
    out.emplace_back(table.columns[column].text[r]);
  return out;
}

std::vector<float> row_of(const Tensor& features, std::int64_t row) {
  std::vector<float> out;
  for (std::int64_t j = 0; j < features.size(1); ++j)
    out.push_back(features.data<float>()[row * features.size(1) + j]);
  return out;
}

std::vector<std::int64_t> all_rows(std::int64_t n) {
  std::vector<std::int64_t> rows(n);
  for (std::int64_t i = 0; i < n; ++i) rows[i] = i;
  return rows;
}

TableOptions options_for(const std::string& target) {
  TableOptions options;
  options.target = target;
  return options;
}

// ---- Reading ----

TEST(CsvTable, QuotedCellsWithDelimitersQuotesAndLineBreaks) {
  const RawTable table = parse_csv_table(
      "\xEF\xBB\xBFname,note,n\r\n"
      "\"Smith, J.\",\"said \"\"hi\"\"\",1\r\n"
      "\"two\nlines\",  plain  ,2\r\n"
      "\r\n\r\n",
      "mem.csv");
  ASSERT_EQ(table.rows, 2);
  EXPECT_EQ(table.names(), (std::vector<std::string>{"name", "note", "n"}));
  EXPECT_EQ(column_text(table, 0), (std::vector<std::string>{"Smith, J.", "two\nlines"}));
  EXPECT_EQ(column_text(table, 1), (std::vector<std::string>{"said \"hi\"", "plain"}));
  EXPECT_EQ(table.where(1, 0), "mem.csv:3:1");  // the line the cell starts on
  EXPECT_EQ(table.where(1, 2), "mem.csv:4:3");
}

TEST(CsvTable, SemicolonAndTabDelimiters) {
  const RawTable semicolons = parse_csv_table("a;b\n1,5;x\n", "s.csv", {';'});
  EXPECT_EQ(column_text(semicolons, 0), std::vector<std::string>{"1,5"});
  // With tabs as the delimiter, a tab is not space around a cell.
  const RawTable tabs = parse_csv_table("a\tb\tc\n1\t\t 3 \n", "t.tsv", {'\t'});
  EXPECT_EQ(column_text(tabs, 1), std::vector<std::string>{""});
  EXPECT_EQ(column_text(tabs, 2), std::vector<std::string>{"3"});
  EXPECT_EQ(CsvDialect::delimiter_from_name("tab"), '\t');
  EXPECT_EQ(CsvDialect::delimiter_from_name("\\t"), '\t');  // --set data.delimiter=\t
  EXPECT_EQ(error_of([] { CsvDialect::delimiter_from_name("|"); }),
            "delimiter \"|\" is not one lathe reads; use \",\", \";\" or \"\\t\"");
  EXPECT_EQ(error_of([] { parse_csv_table("a;b\n\"1\"x;2\n", "s.csv", {';'}); }),
            "s.csv:2:1: unexpected 'x' after the closing quote; expected a semicolon or the end "
            "of the line");
}

TEST(CsvTable, ErrorsKeepFileLineAndColumn) {
  EXPECT_EQ(error_of([] { parse_csv_table("a,b\n1,2\n3\n", "r.csv"); }),
            "r.csv:3: row has 1 cells, the header has 2");
  EXPECT_EQ(error_of([] { parse_csv_table("a,b\n1,2\n\n3,4\n", "r.csv"); }),
            "r.csv:3: empty line between data rows; expected 2 cells");
  EXPECT_EQ(error_of([] { parse_csv_table("a,b\n1,\"open\n2,3\n", "r.csv"); }),
            "r.csv:2:2: the quoted cell is never closed");
  EXPECT_EQ(error_of([] { parse_csv_table("a,a\n1,2\n", "r.csv"); }),
            "r.csv:1:2: duplicate column name 'a' (also column 1)");
  EXPECT_EQ(error_of([] { parse_csv_table("0,0,255\n1,2,3\n", "pixels.csv"); }),
            "pixels.csv:1:2: duplicate column name '0' (also column 1); is the first row data? A "
            "CSV file starts with a row of column names");
  EXPECT_EQ(error_of([] { parse_csv("a\tb\tlabel\n1\t2\t0\n", "t.tsv", "label"); }),
            "t.tsv: target column 'label' not found; columns are: a\tb\tlabel (the header read "
            "as one column that holds tabs: is that the file's delimiter? [data] delimiter sets "
            "it for training, and a model reads the delimiter it was trained with)");
  EXPECT_EQ(error_of([] { parse_csv_table("a,b\n", "r.csv"); }),
            "r.csv: no data rows after the header");
  // A cell after a quoted cell with line breaks is on a later line than its row's start.
  const RawTable spanning = parse_csv_table("a,b,c\n1,\"x\ny\nz\",3\n4,5,6\n", "m.csv");
  EXPECT_EQ(spanning.where(0, 0), "m.csv:2:1");
  EXPECT_EQ(spanning.where(0, 2), "m.csv:4:3");
  EXPECT_EQ(spanning.where(1, 2), "m.csv:5:3");
  EXPECT_EQ(error_of([] { parse_csv_columns("a,b,c\n1,\"x\ny\",zz\n", "n.csv", {"c"}); }),
            "n.csv:3:3: column 'c': 'zz' is not a number");
}

// Text cells end up as JSON strings in the bundle: a file in another encoding is refused where
// it is read, not after training.
TEST(CsvTable, TextThatIsNotUtf8IsRefusedAtItsCell) {
  EXPECT_EQ(error_of([] { parse_csv_table("city,y\nM\xFCnchen,1\n", "latin1.csv"); }),
            "latin1.csv:2:1: the cell is not UTF-8 text (in the cell, invalid UTF-8 at byte "
            "offset 1: 0xfc is a byte that never occurs in UTF-8); lathe reads CSV files as "
            "UTF-8: convert this one (from Windows-1252, say: iconv -f WINDOWS-1252 -t UTF-8)");
  EXPECT_EQ(
      error_of([] { parse_csv_table("note,y\n\"two\nlines\",1\nx,\"\xE9t\xE9\"\n", "q.csv"); }),
      "q.csv:4:2: the cell is not UTF-8 text (in the cell, invalid UTF-8 at byte offset 0: byte "
      "0x74 at offset 1 does not continue the 3-byte sequence that starts with 0xe9); lathe reads "
      "CSV files as UTF-8: convert this one (from Windows-1252, say: iconv -f WINDOWS-1252 -t "
      "UTF-8)");
  EXPECT_EQ(parse_csv_table("city,y\nM\xC3\xBCnchen,1\n", "utf8.csv").columns[0].text[0],
            "M\xC3\xBCnchen");
  EXPECT_EQ(error_of([] {
              parse_csv_table(std::string("\xFF\xFE"
                                          "a\0,\0",
                                          6),
                              "u16.csv");
            }),
            "u16.csv: the file is UTF-16 text (it starts with a UTF-16 byte order mark); lathe "
            "reads CSV files as UTF-8: save it as UTF-8");
  EXPECT_EQ(error_of([] { parse_csv_table("a,b\r1,2\r3,4\r", "mac.csv"); }),
            "mac.csv: the lines end with a carriage return alone (old Mac line ends); lathe reads "
            "LF or CRLF: convert the file (tr '\\r' '\\n' <in >out)");
  EXPECT_EQ(parse_csv_table("a,b\r\n1,2\r", "crlf.csv").rows, 1);
  EXPECT_EQ(error_of([] { parse_csv_table(std::string("a\0,\0b\0\n\0", 8), "u16.csv"); }),
            "u16.csv: a NUL byte at byte offset 1: the file is not UTF-8 text (UTF-16 without a "
            "byte order mark, or not text at all); lathe reads CSV files as UTF-8");
}

TEST(CsvTable, TenMegabytesInOneQuotedCellIsRefusedAtItsPosition) {
  const std::string big = "a,b\n1,2\n3,\"" + std::string(10 << 20, 'x') + "\"\n";
  EXPECT_EQ(error_of([&] { parse_csv_table(big, "big.csv"); }),
            "big.csv:3:2: a cell of more than 1048576 bytes (1 MiB), the longest a CSV cell may "
            "be; is a quote left open?");
  const std::string unquoted = "a,b\n" + std::string(2 << 20, '7') + ",1\n";
  EXPECT_EQ(error_of([&] { parse_csv(unquoted, "n.csv", "b"); }),
            "n.csv:2:1: a cell of more than 1048576 bytes (1 MiB), the longest a CSV cell may "
            "be; is a quote left open?");
}

TEST(Sha256, KnownDigests) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(SplitRows, MatchesRandomSplitOfTheSameRows) {
  const std::int64_t n = 97;
  const TensorDataset rows(Tensor::arange(n), Tensor::arange(n));
  auto [kept, test] = random_split(rows, 0.2, 7);
  auto [train, validation] = random_split(kept, 0.1, 8);
  const SplitRows split = split_rows(n, 0.2, 0.1, 7);
  const auto indices = [](const TensorDataset& d) {
    std::vector<std::int64_t> out;
    for (const double v : d.inputs().to_vector()) out.push_back(static_cast<std::int64_t>(v));
    return out;
  };
  EXPECT_EQ(split.test, indices(test));
  EXPECT_EQ(split.train, indices(train));
  EXPECT_EQ(split.validation, indices(validation));
  EXPECT_EQ(split.test.size() + split.train.size() + split.validation.size(), 97u);
}

// ---- Encoding ----

const char* const kPets =
    "animal,colour,weight,legs\n"
    "cat,black,4.0,4\n"
    "dog,brown,NA,4\n"
    "cat,white,3.0,4\n"
    "bird,black,0.5,2\n"
    "dog,,20,4\n"
    "cat,black,5.0,4\n";

TEST(TableEncoding, InfersCategoricalColumnsAndSortsCategoriesAndClasses) {
  const RawTable table = parse_csv_table(kPets, "pets.csv");
  TableOptions options = options_for("animal");
  options.impute = "median";
  options.impute_categorical = "most_frequent";
  const TableEncoding encoding = TableEncoding::fit(table, all_rows(6), options);
  EXPECT_EQ(encoding.classes(), (std::vector<std::string>{"bird", "cat", "dog"}));
  ASSERT_EQ(encoding.columns().size(), 3u);
  EXPECT_TRUE(encoding.columns()[0].inferred);
  EXPECT_EQ(encoding.columns()[0].categories,
            (std::vector<std::string>{"black", "brown", "white"}));
  EXPECT_EQ(encoding.columns()[0].fill_category, "black");
  EXPECT_EQ(encoding.columns()[1].fill_number, 4.0);  // median of 0.5 3 4 5 20
  EXPECT_EQ(encoding.feature_names(), (std::vector<std::string>{"colour=black", "colour=brown",
                                                                "colour=white", "weight", "legs"}));
  const Tensor features = encoding.transform(table);
  EXPECT_EQ(row_of(features, 1), (std::vector<float>{0, 1, 0, 4, 4}));   // weight imputed
  EXPECT_EQ(row_of(features, 4), (std::vector<float>{1, 0, 0, 20, 4}));  // colour imputed
  EXPECT_EQ(encoding.transform_target(table).to_vector(), (std::vector<double>{1, 2, 1, 0, 2, 1}));
  EXPECT_FALSE(encoding.identity());
}

TEST(TableEncoding, FitsOnTheTrainingRowsOnly) {
  const RawTable table = parse_csv_table(kPets, "pets.csv");
  TableOptions options = options_for("animal");
  options.impute = "mean";
  options.impute_categorical = "constant";
  options.missing_indicator = true;
  // Rows 0, 2, 5: cats only in training would be one class; rows 0..3 hold three.
  const TableEncoding encoding = TableEncoding::fit(table, {0, 1, 2, 3}, options);
  EXPECT_EQ(encoding.columns()[0].categories,
            (std::vector<std::string>{"black", "brown", "white"}));
  EXPECT_FALSE(encoding.columns()[0].indicator);  // no missing colour in training
  EXPECT_TRUE(encoding.columns()[1].indicator);
  EXPECT_DOUBLE_EQ(encoding.columns()[1].fill_number, 2.5);  // mean of 4, 3, 0.5
  // Row 4: a missing colour filled with "missing_value", not a training category: all zeros.
  EXPECT_EQ(row_of(encoding.transform(table), 4), (std::vector<float>{0, 0, 0, 20, 0, 4}));
  EXPECT_EQ(row_of(encoding.transform(table), 1), (std::vector<float>{0, 1, 0, 2.5, 1, 4}));
}

TEST(TableEncoding, UnknownCategoriesAreZerosOrAnError) {
  const RawTable train = parse_csv_table(kPets, "pets.csv");
  TableOptions options = options_for("animal");
  options.impute = "median";
  options.impute_categorical = "most_frequent";
  const RawTable later = parse_csv_table("colour,weight,legs\npink,1,4\n", "later.csv");
  EXPECT_EQ(row_of(TableEncoding::fit(train, all_rows(6), options).transform(later), 0),
            (std::vector<float>{0, 0, 0, 1, 4}));
  options.unknown_category = "error";
  const TableEncoding strict = TableEncoding::fit(train, all_rows(6), options);
  EXPECT_EQ(error_of([&] { strict.transform(later); }),
            "later.csv:2:1: column 'colour': 'pink' is not a category seen in training (black, "
            "brown, white), and unknown_category is \"error\"");
}

TEST(TableEncoding, MissingValuesAreAnErrorByDefault) {
  const RawTable table = parse_csv_table(kPets, "pets.csv");
  EXPECT_EQ(error_of([&] {
              TableEncoding::fit(table, all_rows(6), options_for("animal")).transform(table);
            }),
            "pets.csv:3:3: column 'weight': missing value 'NA', and the column has no imputation "
            "([data] impute, impute_categorical or impute_columns when training)");
  TableOptions options = options_for("animal");
  options.missing_values = {"?"};  // NA is then text, and the column mixes numbers and text
  EXPECT_EQ(error_of([&] { TableEncoding::fit(table, all_rows(6), options); }),
            "pets.csv:3:3: column 'weight': 'NA' is not a number, and 5 other cells of the column "
            "are numbers (list the column in [data] categorical to take its values as "
            "categories)");
}

TEST(TableEncoding, ImputationChoicesPerColumn) {
  const RawTable table = parse_csv_table("y,a,b\n0,1,x\n1,NA,\n0,1,y\n1,3,y\n0,,x\n", "t.csv");
  TableOptions options = options_for("y");
  options.impute_columns = {{"a", "most_frequent"}, {"b", "constant"}};
  options.fill_category = "none";
  options.missing_indicator_columns = {"a"};
  const TableEncoding encoding = TableEncoding::fit(table, all_rows(5), options);
  EXPECT_EQ(encoding.columns()[0].fill_number, 1);
  EXPECT_EQ(encoding.columns()[1].categories, (std::vector<std::string>{"none", "x", "y"}));
  EXPECT_EQ(row_of(encoding.transform(table), 1), (std::vector<float>{1, 1, 1, 0, 0}));
  options.impute_columns = {{"b", "median"}};
  EXPECT_EQ(error_of([&] { TableEncoding::fit(table, all_rows(5), options); }),
            "t.csv: [data] column 'b' is categorical (its cells are not numbers): imputation "
            "\"median\" is for numeric columns; use most_frequent or constant");
  options.impute_columns = {{"c", "median"}};
  EXPECT_EQ(error_of([&] { TableEncoding::fit(table, all_rows(5), options); }),
            "t.csv: [data] impute_columns names column 'c', which the file does not have; "
            "columns are: y, a, b");
  options.impute_columns = {};
  options.impute = "constant";
  options.fill_value = -1;
  options.impute_categorical = "most_frequent";
  const TableEncoding constant = TableEncoding::fit(table, all_rows(5), options);
  EXPECT_EQ(row_of(constant.transform(table), 4), (std::vector<float>{-1, 1, 1, 0}));
}

// scikit-learn's SimpleImputer(strategy="constant") then OneHotEncoder: a fill value training
// never needed is no category, so a missing cell later is an unknown category.
TEST(TableEncoding, ConstantFillOfAColumnWithNoMissingCellsIsAnUnknownCategory) {
  const RawTable train = parse_csv_table("y,c\n0,a\n1,b\n0,a\n", "t.csv");
  TableOptions options = options_for("y");
  options.impute_categorical = "constant";
  const TableEncoding encoding = TableEncoding::fit(train, all_rows(3), options);
  EXPECT_EQ(encoding.columns()[0].categories, (std::vector<std::string>{"a", "b"}));
  const TableEncoding loaded = TableEncoding::from_json(json::parse(encoding.to_json().dump()));
  const RawTable later = parse_csv_table("c\nNA\nb\n", "later.csv");
  EXPECT_EQ(loaded.transform(later).to_vector(), (std::vector<double>{0, 0, 0, 1}));
  options.unknown_category = "error";
  const TableEncoding strict = TableEncoding::fit(train, all_rows(3), options);
  EXPECT_EQ(error_of([&] { TableEncoding::from_json(strict.to_json()).transform(later); }),
            "later.csv:2:1: column 'c': missing value, filled with 'missing_value', which is not "
            "a category: the column had no missing cells in training, and unknown_category is "
            "\"error\"");
}

TEST(TableEncoding, AllMissingColumnsAndLabelProblems) {
  const RawTable empty = parse_csv_table("y,a,b\n0,NA,1\n1,,2\n", "e.csv");
  TableOptions options = options_for("y");
  options.impute = "median";
  EXPECT_EQ(error_of([&] { TableEncoding::fit(empty, all_rows(2), options); }),
            "e.csv:2:2: column 'a': every cell is missing (2 rows); leave it out with [data] drop "
            "= [\"a\"]");
  options.drop = {"a"};
  EXPECT_NO_THROW(TableEncoding::fit(empty, all_rows(2), options));
  const RawTable partly = parse_csv_table("y,a\n0,NA\n1,\n0,3\n", "p.csv");
  EXPECT_EQ(error_of([&] {
              TableEncoding::fit(partly, {0, 1}, options_for("y"));
            }),
            "p.csv:2:2: column 'a': every cell of the training split is missing (2 rows), so "
            "nothing can be learned from it; leave it out with [data] drop = [\"a\"]");

  const RawTable one_class = parse_csv_table("y,a\ncat,1\ncat,2\n", "one.csv");
  EXPECT_EQ(error_of([&] { TableEncoding::fit(one_class, all_rows(2), options_for("y")); }),
            "one.csv:2:1: column 'y': the training split has one class only ('cat'); a "
            "classifier needs two or more");
  const RawTable unlabelled = parse_csv_table("y,a\ncat,1\n,2\ndog,3\n", "u.csv");
  EXPECT_EQ(error_of([&] { TableEncoding::fit(unlabelled, all_rows(3), options_for("y")); }),
            "u.csv:3:1: column 'y': the label is missing ('')");
}

TEST(TableEncoding, LabelsSortLikeLabelEncoderAndUnseenOnesAreNamed) {
  const RawTable numbers = parse_csv_table("y,a\n10,1\n2,2\n-1,3\n2,4\n", "n.csv");
  const TableEncoding integers = TableEncoding::fit(numbers, all_rows(4), options_for("y"));
  EXPECT_EQ(integers.classes(), (std::vector<std::string>{"-1", "2", "10"}));
  EXPECT_EQ(integers.transform_target(numbers).to_vector(), (std::vector<double>{2, 1, 0, 1}));
  const RawTable later = parse_csv_table("a,y\n1,+2\n1,3\n", "later.csv");
  const std::vector<std::int64_t> first{0};
  EXPECT_EQ(integers.transform_target(later, &first).to_vector(), std::vector<double>{1});
  EXPECT_EQ(error_of([&] { integers.transform_target(later); }),
            "later.csv:3:2: column 'y': label '3' is not one of the 3 classes the model was "
            "trained on (-1, 2, 10)");

  TableOptions named = options_for("y");
  named.class_names = {"low", "high"};
  const RawTable mixed = parse_csv_table("y,a\nhigh,1\n0,2\n1,3\n", "m.csv");
  const TableEncoding given = TableEncoding::fit(mixed, all_rows(3), named);
  EXPECT_EQ(given.transform_target(mixed).to_vector(), (std::vector<double>{1, 0, 1}));
  named.class_names = {"low", "mid"};
  EXPECT_EQ(error_of([&] { TableEncoding::fit(mixed, all_rows(3), named); }),
            "m.csv:2:1: column 'y': label 'high' is not one of the 2 classes the model was "
            "trained on (low, mid)");
}

TEST(TableEncoding, RegressionTargetsAndIdentity) {
  const RawTable table = parse_csv_table("x1,y,x2\n1,2.5,3\n4,5,6\n", "r.csv");
  TableOptions options = options_for("y");
  options.classification = false;
  const TableEncoding encoding = TableEncoding::fit(table, all_rows(2), options);
  EXPECT_TRUE(encoding.identity());
  EXPECT_EQ(encoding.transform(table).to_vector(), (std::vector<double>{1, 3, 4, 6}));
  EXPECT_EQ(encoding.transform_target(table).to_vector(), (std::vector<double>{2.5, 5}));
  const RawTable reordered = parse_csv_table("x2,x1\n6,4\n", "o.csv");
  EXPECT_EQ(encoding.transform(reordered).to_vector(), (std::vector<double>{4, 6}));
  const RawTable missing = parse_csv_table("x2\n6\n", "o.csv");
  EXPECT_EQ(error_of([&] { encoding.transform(missing); }),
            "o.csv: column 'x1' not found; columns are: x2");
  const RawTable text = parse_csv_table("x1,x2\nlong,6\n", "s.csv");
  EXPECT_EQ(error_of([&] { encoding.transform(text); }),
            "s.csv:2:1: column 'x1': 'long' is not a number");
}

TEST(TableEncoding, NumericAndNullCellsFromRequests) {
  const RawTable table = parse_csv_table(kPets, "pets.csv");
  TableOptions options = options_for("animal");
  options.impute = "median";
  options.impute_categorical = "most_frequent";
  const TableEncoding encoding = TableEncoding::fit(table, all_rows(6), options);
  RawTable request;
  request.source = "request";
  request.rows = 2;
  request.locate = [](std::int64_t row, std::size_t column) {
    return "inputs[" + std::to_string(column) + "].data[" + std::to_string(row) + "]";
  };
  RawColumn colour{.name = "colour", .null = {0, 1}};
  colour.text.push_back("white");
  colour.text.push_back("");
  request.columns.push_back(std::move(colour));
  request.columns.push_back({.name = "weight", .numeric = true, .numbers = {NAN, 2}});
  request.columns.push_back({.name = "legs", .numeric = true, .numbers = {4, 2}});
  EXPECT_EQ(encoding.transform(request).to_vector(),
            (std::vector<double>{0, 0, 1, 4, 4, 1, 0, 0, 2, 2}));
}

TEST(TableEncoding, JsonRoundTripAndHostileJson) {
  const RawTable table = parse_csv_table(kPets, "pets.csv");
  TableOptions options = options_for("animal");
  options.impute = "median";
  options.impute_categorical = "most_frequent";
  options.missing_indicator = true;
  const TableEncoding encoding = TableEncoding::fit(table, all_rows(6), options, {';'});
  const json saved = encoding.to_json();
  const TableEncoding loaded = TableEncoding::from_json(json::parse(saved.dump()));
  EXPECT_EQ(loaded.to_json(), saved);
  EXPECT_EQ(loaded.delimiter(), ';');
  EXPECT_EQ(loaded.transform(table).to_vector(), encoding.transform(table).to_vector());

  const auto broken = [&](const std::function<void(json&)>& change) {
    json j = saved;
    change(j);
    return error_of([&] { TableEncoding::from_json(j); });
  };
  EXPECT_EQ(broken([](json& j) { j = json::array(); }), "encoding: expected an object, got array");
  EXPECT_EQ(broken([](json& j) { j.erase("columns"); }), "encoding.columns: missing");
  EXPECT_EQ(broken([](json& j) {
              j["columns"][0]["categories"] = {"b", "a"};
            }),
            "encoding.columns[0].categories[1]: the entries must be sorted (byte order) and "
            "distinct");
  EXPECT_EQ(broken([](json& j) { j["columns"][0]["fill"] = "green"; }),
            "encoding.columns[0].fill: 'green' is not one of the column's categories");
  EXPECT_EQ(broken([](json& j) { j["columns"][1]["fill"] = 1e300; }),
            "encoding.columns[1].fill: expected a finite float32 number");
  EXPECT_EQ(broken([](json& j) { j["columns"][1]["impute"] = "guess"; }),
            "encoding.columns[1].impute: \"guess\"; expected one of none, mean, median, "
            "most_frequent, constant");
  EXPECT_EQ(broken([](json& j) { j["columns"][2]["name"] = "colour"; }),
            "encoding.columns[2].name: 'colour' appears twice");
  EXPECT_EQ(broken([](json& j) { j["classes"] = {"cat"}; }),
            "encoding.classes: a classifier needs two or more classes");
  EXPECT_EQ(broken([](json& j) { j["delimiter"] = "|"; }),
            "encoding.delimiter: delimiter \"|\" is not one lathe reads; use \",\", \";\" or "
            "\"\\t\"");
  EXPECT_EQ(broken([](json& j) { j["columns"][0]["kind"] = 3; }),
            "encoding.columns[0].kind: expected a string, got number");
}

// The real table of examples/penguins: 344 rows, 11 with missing cells (two with every
// measurement missing, nine with only sex), species from the other columns.
TEST(TableEncoding, PalmerPenguins) {
  const std::filesystem::path path =
      std::filesystem::path(LATHE_SOURCE_DIR) /
      "data/deb/usr/lib/R/site-library/palmerpenguins/extdata/penguins.csv";
  ASSERT_TRUE(std::filesystem::exists(path)) << path << " is missing: run scripts/setup.sh";
  const RawTable table = read_csv_table(path);
  ASSERT_EQ(table.rows, 344);
  const SplitRows split = split_rows(table.rows, 0.2, 0.1, 0);
  TableOptions options = options_for("species");
  options.impute = "median";
  options.impute_categorical = "most_frequent";
  const TableEncoding encoding = TableEncoding::fit(table, split.train, options);
  EXPECT_EQ(encoding.classes(), (std::vector<std::string>{"Adelie", "Chinstrap", "Gentoo"}));
  EXPECT_EQ(encoding.column_names(),
            (std::vector<std::string>{"island", "bill_length_mm", "bill_depth_mm",
                                      "flipper_length_mm", "body_mass_g", "sex", "year"}));
  EXPECT_EQ(encoding.columns()[0].categories,
            (std::vector<std::string>{"Biscoe", "Dream", "Torgersen"}));
  EXPECT_EQ(encoding.columns()[5].categories, (std::vector<std::string>{"female", "male"}));
  EXPECT_EQ(encoding.width(), 3 + 4 + 2 + 1);
  const Tensor features = encoding.transform(table);
  for (const double v : features.to_vector()) ASSERT_TRUE(std::isfinite(v));
  std::int64_t missing = 0;
  for (const EncodedColumn& column : encoding.columns()) missing += column.missing_in_training;
  EXPECT_GT(missing, 0);
}

}  // namespace
}  // namespace lathe
