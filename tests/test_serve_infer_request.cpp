// parse_infer_request: the JSON body of an Open Inference Protocol v2 infer request, checked
// against a model whose examples are 2x2 (4 features).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "src/serve/infer_request.h"

namespace lathe::serve {
namespace {

ModelSignature signature() {
  ModelSignature s;
  s.input_shape = {2, 2};
  s.output_names = {"probabilities", "class_index"};
  return s;
}

InferRequest parse(const std::string& body, RequestLimits limits = {}) {
  return parse_infer_request(body, signature(), limits);
}

// The message of the RequestError parse throws, checked to be a 400.
std::string rejection(const std::string& body, RequestLimits limits = {}) {
  try {
    parse(body, limits);
  } catch (const RequestError& e) {
    EXPECT_EQ(e.status(), 400) << e.what();
    return e.what();
  }
  return "(accepted)";
}

std::string request(const std::string& shape, const std::string& data,
                    const std::string& datatype = "FP32") {
  return R"({"inputs":[{"name":"input","shape":)" + shape + R"(,"datatype":")" + datatype +
         R"(","data":)" + data + "}]}";
}

#define EXPECT_REJECTED(body, fragment)                                           \
  do {                                                                            \
    const std::string message_ = rejection(body);                                 \
    EXPECT_NE(message_.find(fragment), std::string::npos) << "got: " << message_; \
  } while (0)

TEST(InferRequest, ReadsFlatData) {
  const InferRequest r = parse(request("[2,2,2]", "[1,2,3,4,5,6,7,8.5]"));
  EXPECT_EQ(r.batch, 2);
  EXPECT_EQ(r.data, (std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8.5f}));
  EXPECT_FALSE(r.id);
  EXPECT_TRUE(r.requested_outputs.empty());
}

TEST(InferRequest, ReadsNestedDataAndTheFlattenedShape) {
  const InferRequest nested = parse(request("[2,2,2]", "[[[1,2],[3,4]],[[5,6],[7,8]]]"));
  EXPECT_EQ(nested.data, (std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8}));
  const InferRequest flat = parse(request("[1,4]", "[[-1,0,1e2,2.5]]"));
  EXPECT_EQ(flat.batch, 1);
  EXPECT_EQ(flat.data, (std::vector<float>{-1, 0, 100, 2.5f}));
}

TEST(InferRequest, ReadsIdOutputsAndIgnoresExtensions) {
  const InferRequest r =
      parse(R"({"id":"req-7","parameters":{"x":[1,{"y":null}]},"future":[true],)"
            R"("inputs":[{"name":"input","parameters":{"binary_data_size":0},"shape":[1,4],)"
            R"("datatype":"FP32","data":[1,2,3,4],"extra":{"a":"b"}}],)"
            R"("outputs":[{"name":"class_index","parameters":{}},{"name":"class_index"}]})");
  EXPECT_EQ(r.id, "req-7");
  EXPECT_EQ(r.requested_outputs, (std::vector<std::string>{"class_index"}));
}

TEST(InferRequest, KeysMayComeInAnyOrder) {
  const InferRequest r =
      parse(R"({"inputs":[{"data":[1,2,3,4],"datatype":"INT32","shape":[1,2,2],"name":"input"}]})");
  EXPECT_EQ(r.data, (std::vector<float>{1, 2, 3, 4}));
}

TEST(InferRequest, ConvertsIntegerDatatypes) {
  EXPECT_EQ(parse(request("[1,4]", "[0,255,7,1]", "UINT8")).data,
            (std::vector<float>{0, 255, 7, 1}));
  // Whole numbers printed with a decimal point, as JSON writers print doubles, are integers.
  EXPECT_EQ(parse(request("[1,4]", "[0.0,255.0,7e0,-0.0]", "UINT8")).data,
            (std::vector<float>{0, 255, 7, 0}));
  EXPECT_EQ(parse(request("[1,4]", "[-2147483648,2147483647,0,1]", "INT32")).data[0],
            -2147483648.0f);
  EXPECT_EQ(
      parse(request("[1,4]", "[-9223372036854775808,9223372036854775807,0,1]", "INT64")).data[1],
      9223372036854775807.0f);
  EXPECT_EQ(parse(request("[1,4]", "[1e-300,0,0,0.5]", "FP64")).data,
            (std::vector<float>{0, 0, 0, 0.5f}));
  // Integers beyond 64 bits are read as doubles, as nlohmann reads them; 1e-400 is 0.
  EXPECT_EQ(parse(request("[1,4]", "[99999999999999999999,-9223372036854775809,1e-400,-0]")).data,
            (std::vector<float>{1e20f, -9223372036854775808.0f, 0, 0}));
}

TEST(InferRequest, RejectsValuesOutsideTheirDatatype) {
  EXPECT_REJECTED(request("[1,4]", "[0,256,0,0]", "UINT8"), "256, above the UINT8 range");
  EXPECT_REJECTED(request("[1,4]", "[0,-1,0,0]", "UINT8"), "-1, below the UINT8 range");
  EXPECT_REJECTED(request("[1,4]", "[0,2147483648,0,0]", "INT32"), "above the INT32 range");
  EXPECT_REJECTED(request("[1,4]", "[0,9223372036854775808,0,0]", "INT64"),
                  "above the INT64 range");
  EXPECT_REJECTED(request("[1,4]", "[0,1.5,0,0]", "INT64"), "not an integer, for datatype INT64");
  EXPECT_REJECTED(request("[1,4]", "[0,256.0,0,0]", "UINT8"), "256, above the UINT8 range");
  EXPECT_REJECTED(request("[1,4]", "[0,-1e10,0,0]", "INT32"), "below the INT32 range");
  EXPECT_REJECTED(request("[1,4]", "[0,1e39,0,0]"), "beyond the float32 range");
  EXPECT_REJECTED(request("[1,4]", "[0,-1e300,0,0]", "FP64"), "beyond the float32 range");
  EXPECT_REJECTED(request("[1,4]", "[0,1e400,0,0]", "FP64"),
                  "malformed JSON at byte 74: number overflow parsing '1e400'");
  EXPECT_REJECTED(request("[1,4]", "[true,0,0,0]", "BOOL"), "data holds a boolean");
  EXPECT_REJECTED(request("[1,4]", "[0,0,0,0]", "BOOL"), "datatype \"BOOL\" is not supported");
  EXPECT_REJECTED(request("[1,4]", "[0,0,0,0]", "FP16"), "use FP32, FP64, INT64, INT32 or UINT8");
}

TEST(InferRequest, RejectsShapesThatDoNotFitTheModel) {
  EXPECT_REJECTED(request("[1,3]", "[1,2,3]"),
                  "shape [1,3] does not fit this model; expected "
                  "[N,2,2] or [N,4]");
  EXPECT_REJECTED(request("[4]", "[1,2,3,4]"), "shape [4] does not fit");
  EXPECT_REJECTED(request("[1,2,2,1]", "[1,2,3,4]"), "does not fit");
  EXPECT_REJECTED(request("[]", "[]"), "shape [] does not fit");
  EXPECT_REJECTED(request("[0,4]", "[]"), "has no examples (N = 0)");
  EXPECT_REJECTED(request("[2,4]", "[1,2,3,4]"), "data has 4 values but shape [2,4] needs 8");
  EXPECT_REJECTED(request("[1,4]", "[1,2,3,4,5]"), "data has 5 values but shape [1,4] needs 4");
  EXPECT_REJECTED(request("[1,-4]", "[1,2,3,4]"), "shape[1] is -4");
  EXPECT_REJECTED(request("[1,4.0]", "[1,2,3,4]"), "shape[1] is 4.0");
  EXPECT_REJECTED(request("[1,\"4\"]", "[1,2,3,4]"), "shape[1] is a string");
  EXPECT_REJECTED(request("[1,[4]]", "[1,2,3,4]"), "shape[1] is an array");
  EXPECT_REJECTED(request("[1,18446744073709551615]", "[1]"), "beyond any tensor size");
  EXPECT_REJECTED(request("[1,18446744073709551616 ]", "[1]"),
                  "shape[1] is 18446744073709551616; dimensions are non-negative integers");
}

TEST(InferRequest, RejectsElementCountsThatOverflowOrExceedTheLimit) {
  // 2^62 * 4 = 2^64 wraps to 0 in 64 bits; 2^62 * 2 * 2 likewise.
  EXPECT_REJECTED(request("[4611686018427387904,4]", "[1,2,3,4]"), "holds more than");
  EXPECT_REJECTED(request("[4611686018427387904,2,2]", "[]"), "holds more than");
  EXPECT_REJECTED(request("[3037000500,3037000500,4]", "[]"), "holds more than");
  RequestLimits small;
  small.max_elements = 8;
  EXPECT_NE(rejection(request("[3,4]", "[]"), small).find("holds more than 8 elements"),
            std::string::npos);
  EXPECT_NE(rejection(request("[1,4]", "[1,2,3,4,5,6,7,8,9]"), small)
                .find("data holds more than 8 values"),
            std::string::npos);
  EXPECT_EQ(parse(request("[2,4]", "[1,2,3,4,5,6,7,8]"), small).batch, 2);
}

TEST(InferRequest, RefusesDeepNestingBeforeReadingIt) {
  const std::string deep_arrays(100000, '[');
  EXPECT_REJECTED(deep_arrays, "the body is a JSON array");  // at the first bracket
  EXPECT_REJECTED(R"({"inputs":[{"name":"input","data":)" + deep_arrays, "deeper than 32 levels");
  std::string deep_objects;
  for (int i = 0; i < 100000; ++i) deep_objects += "{\"a\":";
  EXPECT_REJECTED(deep_objects, "deeper than 32 levels");
  EXPECT_REJECTED(request("[1,4]", std::string(40, '[') + "1" + std::string(40, ']')),
                  "deeper than 32 levels");
  EXPECT_REJECTED(
      R"({"inputs":[{"parameters":{"a":)" + std::string(50, '[') + std::string(50, ']') + "}}]}",
      "deeper than 32 levels");
  RequestLimits shallow;
  shallow.max_depth = 4;
  EXPECT_NE(rejection(request("[1,2,2]", "[[1,2],[3,4]]"), shallow).find("deeper than 4"),
            std::string::npos);
  EXPECT_EQ(parse(request("[1,4]", "[1,2,3,4]"), shallow).batch, 1);
}

TEST(InferRequest, RejectsMalformedJson) {
  EXPECT_REJECTED("", "malformed JSON");
  EXPECT_REJECTED("{", "malformed JSON");
  EXPECT_REJECTED(R"({"inputs":[}])", "malformed JSON at byte 12: syntax error");
  EXPECT_REJECTED(request("[1,4]", "[1,2,3,4]") + "x", "malformed JSON");
  EXPECT_REJECTED(request("[1,4]", "[1,2,3,NaN]"), "malformed JSON");
  EXPECT_REJECTED("{\"id\":\"\xff\xfe\"}", "malformed JSON");
  EXPECT_REJECTED("{\"id\":\"" + std::string(100000, 'a'), "malformed JSON");
  EXPECT_REJECTED(request("[1,4]", "[1,2,3,4]") + " {}", "malformed JSON at byte");
  EXPECT_REJECTED(request("[1,4]", "[1,2,3,4]").substr(0, 60), "malformed JSON at byte 61");
  EXPECT_REJECTED(R"({"id":tru})", "malformed JSON at byte");
  // nlohmann took a NUL byte for the end of the text and accepted what came before it.
  const std::string before_nul = request("[1,4]", "[1,2,3,4]");
  EXPECT_REJECTED(before_nul + std::string("\0x", 2),
                  fmt::format("malformed JSON at byte {}: a NUL byte", before_nul.size() + 1));
  EXPECT_REJECTED(request("[1,4]", "[1,2,nul,4]"), "malformed JSON at byte");
  // The token echoed in a message is cut short.
  EXPECT_LT(rejection("{\"inputs\":" + std::string(100000, 'x')).size(), 300u);
}

TEST(InferRequest, RejectsMissingFields) {
  EXPECT_REJECTED("{}", "no \"inputs\"");
  EXPECT_REJECTED(R"({"inputs":[]})", "\"inputs\" is empty");
  EXPECT_REJECTED(R"({"inputs":[{"shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]})",
                  "inputs[0] has no \"name\"");
  EXPECT_REJECTED(R"({"inputs":[{"name":"input","shape":[1,4],"data":[1,2,3,4]}]})",
                  "has no \"datatype\"");
  EXPECT_REJECTED(R"({"inputs":[{"name":"input","datatype":"FP32","data":[1,2,3,4]}]})",
                  "has no \"shape\"");
  EXPECT_REJECTED(R"({"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32"}]})",
                  "has no \"data\"");
  EXPECT_REJECTED(R"({"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}],
                      "outputs":[{}]})",
                  "outputs[0] has no \"name\"");
}

TEST(InferRequest, RejectsWrongTypes) {
  EXPECT_REJECTED("[]", "the body is a JSON array");
  EXPECT_REJECTED("42", "the body is a number");
  EXPECT_REJECTED("null", "the body is null");
  EXPECT_REJECTED(R"({"id":5})", "\"id\" is a number; expected a string");
  EXPECT_REJECTED(R"({"inputs":{}})", "\"inputs\" is an object; expected an array of objects");
  EXPECT_REJECTED(R"({"inputs":[5]})", "inputs[0] is a number; each input is an object");
  EXPECT_REJECTED(R"({"inputs":[[]]})", "inputs[0] is an array");
  EXPECT_REJECTED(R"({"inputs":[{"name":"input"},7]})", "inputs[1] is a number");
  EXPECT_REJECTED(R"({"inputs":[{"name":5}]})", "\"inputs[0].name\" is a number");
  EXPECT_REJECTED(R"({"inputs":[{"shape":"1,4"}]})", "\"inputs[0].shape\" is a string");
  EXPECT_REJECTED(R"({"inputs":[{"data":{"a":1}}]})", "\"inputs[0].data\" is an object");
  EXPECT_REJECTED(request("[1,4]", "[1,2,\"3\",4]"), "data holds a string");
  EXPECT_REJECTED(request("[1,4]", "[1,2,null,4]"), "data holds null");
  EXPECT_REJECTED(request("[1,4]", "[1,2,{},4]"), "data holds an object");
  EXPECT_REJECTED(R"({"parameters":[1]})", "\"parameters\" is an array; expected an object");
  EXPECT_REJECTED(R"({"outputs":[5]})", "outputs[0] is a number");
}

TEST(InferRequest, RejectsWhatThisModelCannotTake) {
  EXPECT_REJECTED(R"({"inputs":[{"name":"pixels","shape":[1,4],"datatype":"FP32",)"
                  R"("data":[1,2,3,4]}]})",
                  "inputs[0].name is \"pixels\"; this model's input is \"input\"");
  const std::string one = R"({"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]})";
  EXPECT_REJECTED("{\"inputs\":[" + one + "," + one + "]}", "more than one input");
  EXPECT_REJECTED(R"({"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32",)"
                  R"("data":[1,2,3,4]}],"outputs":[{"name":"logits"}]})",
                  "requested output \"logits\" is not an output of this model; it has "
                  "\"probabilities\", \"class_index\"");
}

TEST(InferRequest, CutsLongNamesInMessagesWithoutBreakingUtf8) {
  std::string name = "x";  // then 2-byte characters: the cut at byte 120 falls inside one
  for (int i = 0; i < 200; ++i) name += "\xc3\xa9";
  const std::string message = rejection(R"({"inputs":[{"name":")" + name +
                                        R"(","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]})");
  EXPECT_NE(message.find("inputs[0].name is \"x\xc3\xa9"), std::string::npos) << message;
  EXPECT_NE(message.find("\xef\xbf\xbd\"...;"), std::string::npos) << message;  // U+FFFD
  EXPECT_NE(message.find("; this model's input is \"input\""), std::string::npos) << message;
  EXPECT_LT(message.size(), 300u);
}

TEST(InferRequest, RejectsDuplicateKeys) {
  EXPECT_REJECTED(R"({"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32",)"
                  R"("data":[1,2,3,4],"data":[5,6,7,8]}]})",
                  "inputs[0].\"data\" appears twice");
  EXPECT_REJECTED(R"({"id":"a","id":"b"})", "\"id\" appears twice");
}

// A small deterministic fuzz: bytes of valid requests flipped, deleted, duplicated and replaced
// by JSON punctuation. Whatever the body, the parser returns or throws RequestError (a 400).
TEST(InferRequest, MutatedBodiesOnlyEverThrowRequestError) {
  const std::vector<std::string> seeds{
      request("[2,2,2]", "[[[1,2],[3,4]],[[5,6],[7,8]]]"), request("[1,4]", "[0.5,-1.25e2,3.0,-7]"),
      R"({"id":"a","inputs":[{"name":"input","shape":[1,4],"datatype":"UINT8","data":[1,2,3,4],)"
      R"("parameters":{"x":[{}]}}],"outputs":[{"name":"class_index"}],"parameters":{}})"};
  const std::string punctuation = "[]{}\",:-.0123456789eE\\ \xff\xc3";
  std::mt19937 random(12345);
  int accepted = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string body = seeds[round % seeds.size()];
    const int edits = 1 + static_cast<int>(random() % 4);
    for (int e = 0; e < edits && !body.empty(); ++e) {
      const std::size_t at = random() % body.size();
      switch (random() % 4) {
        case 0:
          body[at] = punctuation[random() % punctuation.size()];
          break;
        case 1:
          body.erase(at, 1 + random() % 8);
          break;
        case 2:
          body.insert(at, body.substr(at, 1 + random() % 16));
          break;
        default:
          body.insert(at, 1, punctuation[random() % punctuation.size()]);
      }
    }
    // nlohmann's verdict is the reference: a body is accepted only when nlohmann accepts it, and
    // called malformed only when nlohmann says so; its values are the numbers nlohmann reads.
    const bool valid_json = nlohmann::json::accept(body);
    try {
      const InferRequest r = parse(body);
      ++accepted;
      ASSERT_TRUE(valid_json) << "accepted malformed JSON: " << body;
      std::vector<float> expected;
      std::vector<nlohmann::json> pending{nlohmann::json::parse(body)["inputs"][0]["data"]};
      while (!pending.empty()) {  // flattened depth first, in order
        nlohmann::json value = std::move(pending.back());
        pending.pop_back();
        if (value.is_array())
          for (auto it = value.rbegin(); it != value.rend(); ++it) pending.push_back(*it);
        else
          expected.push_back(value.get<float>());
      }
      ASSERT_EQ(r.data, expected) << body;
    } catch (const RequestError& e) {
      ASSERT_EQ(e.status(), 400);
      const std::string message = e.what();
      ASSERT_FALSE(message.empty());
      // Malformed JSON may be refused for a problem the walk met before the malformed part.
      if (valid_json) {
        ASSERT_NE(message.rfind("malformed JSON", 0), 0u) << message << ": " << body;
      }
    }
  }
  EXPECT_GT(accepted, 0);  // some mutations (in numbers, say) stay valid
}

// ---- Models trained on a table: one input per column (BYTES for text columns) ----

ModelSignature table_signature(bool all_numeric = false) {
  ModelSignature s;
  s.input_shape = {4};
  s.output_names = {"probabilities", "class_index"};
  s.columns = {{"island", all_numeric}, {"bill", true}};
  return s;
}

std::string table_rejection(const std::string& body, bool all_numeric = false) {
  try {
    parse_infer_request(body, table_signature(all_numeric), {});
  } catch (const RequestError& e) {
    EXPECT_EQ(e.status(), 400) << e.what();
    return e.what();
  }
  return "(accepted)";
}

const char* const kTableRequest =
    R"({"id":"t","inputs":[)"
    R"({"name":"bill","shape":[3],"datatype":"FP32","data":[39.1,null,41]},)"
    R"({"name":"island","shape":[3,1],"datatype":"BYTES","data":["Dream","Biscoe",null]}]})";

TEST(InferRequest, TableColumnsAsInputsWithStringsAndNulls) {
  const InferRequest r = parse_infer_request(kTableRequest, table_signature(), {});
  ASSERT_TRUE(r.table);
  EXPECT_EQ(r.batch, 3);
  EXPECT_EQ(*r.id, "t");
  const RawTable& t = *r.table;
  EXPECT_EQ(t.rows, 3);
  ASSERT_EQ(t.names(), (std::vector<std::string>{"bill", "island"}));
  EXPECT_TRUE(t.columns[0].numeric);
  EXPECT_EQ(t.columns[0].numbers[0], 39.1f);
  EXPECT_TRUE(std::isnan(t.columns[0].numbers[1]));
  EXPECT_FALSE(t.columns[1].numeric);
  EXPECT_EQ(t.columns[1].text[1], "Biscoe");
  EXPECT_TRUE(t.columns[1].is_null(2));
  EXPECT_FALSE(t.columns[1].is_null(0));
  EXPECT_EQ(t.where(2, 1), "inputs[1].data[2]");
}

TEST(InferRequest, OneNumericInputForAllNumericTables) {
  const InferRequest r = parse_infer_request(
      R"({"inputs":[{"name":"input","shape":[2,2],"datatype":"FP32","data":[1,2,3,null]}]})",
      table_signature(true), {});
  ASSERT_TRUE(r.table);
  EXPECT_EQ(r.table->columns[1].numbers[0], 2);
  EXPECT_TRUE(std::isnan(r.table->columns[1].numbers[1]));
  EXPECT_EQ(r.table->where(1, 1), "inputs[0].data[3]");
  EXPECT_NE(table_rejection(R"({"inputs":[{"name":"input","shape":[2,2],"datatype":"FP32",)"
                            R"("data":[1,2,3,4]}]})")
                .find("inputs[0].name is \"input\"; this model takes one input per column: "
                      "\"island\", \"bill\""),
            std::string::npos);
}

TEST(InferRequest, TableRequestErrorsNameTheField) {
  const auto with = [](const std::string& bill, const std::string& island) {
    return R"({"inputs":[)" + bill + "," + island + "]}";
  };
  const std::string bill = R"({"name":"bill","shape":[1],"datatype":"FP32","data":[39.1]})";
  const std::string island = R"({"name":"island","shape":[1],"datatype":"BYTES","data":["Dream"]})";
  EXPECT_EQ(table_rejection(with(bill, island)), "(accepted)");
  EXPECT_EQ(table_rejection(
                with(R"({"name":"bill","shape":[1],"datatype":"BYTES","data":["x"]})", island)),
            "inputs[0] (\"bill\"): datatype BYTES, but the column is numeric in this model; send "
            "its values as numbers (FP32, FP64, INT64, INT32 or UINT8)");
  EXPECT_EQ(table_rejection(R"({"inputs":[)" + bill + "]}"),
            "the request has no input for column \"island\"; this model takes one input per "
            "column: \"island\", \"bill\"");
  EXPECT_EQ(table_rejection(with(bill, bill)), "inputs[1]: column \"bill\" is also inputs[0]");
  EXPECT_EQ(table_rejection(with(bill, R"({"name":"island","shape":[2],"datatype":"BYTES",)"
                                       R"("data":["a","b"]})")),
            "inputs[1].shape [2] has 2 rows but inputs[0] has 1");
  EXPECT_EQ(table_rejection(with(bill, R"({"name":"sea","shape":[1],"datatype":"BYTES",)"
                                       R"("data":["a"]})")),
            "inputs[1].name is \"sea\"; this model takes one input per column: \"island\", "
            "\"bill\"");
  EXPECT_EQ(table_rejection(with(bill, R"({"name":"island","shape":[1],"datatype":"BYTES",)"
                                       R"("data":[3]})")),
            "inputs[1].data holds a number; datatype BYTES holds strings");
  EXPECT_EQ(table_rejection(
                with(R"({"name":"bill","shape":[1],"datatype":"FP32","data":["3"]})", island)),
            "inputs[0].data holds a string; datatype FP32 holds numbers (BYTES for text)");
  EXPECT_EQ(table_rejection(with(bill, R"({"name":"island","shape":[1,2],"datatype":"BYTES",)"
                                       R"("data":["a","b"]})")),
            "inputs[1].shape [1,2] does not fit this model; expected [N] or [N,1]");
  EXPECT_EQ(table_rejection(with(bill, R"({"name":"island","shape":[1],"datatype":"BYTES",)"
                                       R"("data":[{"a":1}]})")),
            "inputs[1].data holds an object; it holds numbers, strings or nulls, flat or in "
            "nested arrays");
  EXPECT_EQ(table_rejection(R"({"inputs":[)" + bill + "," + island + "," + bill + "]}"),
            "inputs[2]: the request has more than 2 inputs; this model takes one per column: "
            "\"island\", \"bill\"");
  // A text column also takes numbers (a category like a year), as their text.
  EXPECT_EQ(table_rejection(with(bill, R"({"name":"island","shape":[1],"datatype":"INT64",)"
                                       R"("data":[2007]})")),
            "(accepted)");
}

}  // namespace
}  // namespace lathe::serve
