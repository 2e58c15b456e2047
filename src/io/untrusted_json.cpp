#include "src/io/untrusted_json.h"

#include <set>
#include <vector>

#include <fmt/format.h>

#include "lathe/error.h"

namespace lathe::detail {
namespace {

struct Frame {
  bool object = false;
  std::set<std::string> keys;
  std::string last_key;
};

// "/a/b" for the open objects and arrays, as a JSON pointer would name the place.
std::string place(const std::vector<Frame>& frames) {
  std::string out;
  for (std::size_t i = 0; i + 1 < frames.size(); ++i) {
    out += '/';
    out += frames[i].object ? printable(frames[i].last_key) : "[]";
  }
  return out.empty() ? "the top level" : fmt::format("'{}'", out);
}

// Whether `value` nests at most `max_depth` levels (the top-level value is depth 1), checked
// without recursion.
bool shallow(const nlohmann::json& value, int max_depth) {
  std::vector<std::pair<const nlohmann::json*, int>> pending{{&value, 1}};
  while (!pending.empty()) {
    const auto [node, depth] = pending.back();
    pending.pop_back();
    if (depth > max_depth) return false;
    if (node->is_structured())
      for (const nlohmann::json& child : *node) pending.emplace_back(&child, depth + 1);
  }
  return true;
}

// The limits, checked by a first pass that builds nothing. (nlohmann's callback parser could check
// them while building, but it scans the parent container at the end of every object: a bundle
// whose table encoding lists 100,000 columns took seconds to read.)
class LimitChecker : public NestingSax {
 public:
  LimitChecker(const std::string& context, int max_depth)
      : context_(context), max_depth_(max_depth) {}

  bool start_object(std::size_t) override { return open(true); }
  bool start_array(std::size_t) override { return open(false); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }
  bool key(string_t& key) override {
    Frame& frame = frames_.back();
    frame.last_key = key;
    if (!frame.keys.insert(key).second)
      throw Error(fmt::format("{}: key '{}' appears twice in the object at {}", context_,
                              printable(key), place(frames_)));
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::json::exception& e) override {
    if (const auto* error = dynamic_cast<const nlohmann::json::parse_error*>(&e)) throw *error;
    throw Error(fmt::format("{}: not valid JSON: {}", context_, printable(e.what(), false)));
  }

 private:
  bool open(bool object) {
    frames_.push_back(Frame{object, {}, {}});
    if (static_cast<int>(frames_.size()) > max_depth_)
      throw Error(fmt::format("{}: JSON nests deeper than {} levels at {}", context_, max_depth_,
                              place(frames_)));
    return true;
  }
  bool close() {
    frames_.pop_back();
    return true;
  }

  const std::string& context_;
  int max_depth_;
  std::vector<Frame> frames_;
};

}  // namespace

nlohmann::json parse_untrusted_json(std::string_view text, const std::string& context,
                                    int max_depth) {
  try {
    LimitChecker checker(context, max_depth);
    nlohmann::json::sax_parse(text.begin(), text.end(), &checker);
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    // The message may quote the offending (possibly not UTF-8) bytes.
    throw Error(fmt::format("{}: not valid JSON (byte {}): {}", context, e.byte,
                            printable(json_error_text(e), false)));
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: not valid JSON: {}", context, printable(e.what(), false)));
  }
}

std::string json_error_text(const std::exception& error) {
  std::string text = error.what();
  if (const auto end = text.find("] "); text.starts_with("[json.") && end != text.npos)
    text.erase(0, end + 2);
  return text;
}

std::string printable(std::string_view text, bool keep_utf8) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f || (!keep_utf8 && byte >= 0x80))
      out += fmt::format("\\x{:02x}", byte);
    else
      out += c;
  }
  return out;
}

std::string shown_json(const nlohmann::json& value, std::size_t max_chars) {
  // dump() recurses, and a value from nlohmann::json::parse may nest arbitrarily deep.
  if (!shallow(value, 64)) return "a value nested more than 64 levels deep";
  std::string text = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (text.size() > max_chars) {
    text.resize(max_chars);
    // Do not end inside a UTF-8 sequence.
    while (!text.empty() && (static_cast<unsigned char>(text.back()) & 0xc0) == 0x80)
      text.pop_back();
    if (!text.empty() && static_cast<unsigned char>(text.back()) >= 0xc0) text.pop_back();
    text += "...";
  }
  return printable(text);
}

}  // namespace lathe::detail
