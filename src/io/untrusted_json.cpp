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

}  // namespace

nlohmann::json parse_untrusted_json(std::string_view text, const std::string& context,
                                    int max_depth) {
  using Event = nlohmann::json::parse_event_t;
  std::vector<Frame> frames;
  const auto check = [&](int /*depth*/, Event event, nlohmann::json& parsed) {
    switch (event) {
      case Event::object_start:
      case Event::array_start:
        frames.push_back(Frame{event == Event::object_start, {}, {}});
        if (static_cast<int>(frames.size()) > max_depth)
          throw Error(fmt::format("{}: JSON nests deeper than {} levels at {}", context, max_depth,
                                  place(frames)));
        break;
      case Event::key: {
        Frame& frame = frames.back();
        frame.last_key = parsed.get<std::string>();
        if (!frame.keys.insert(frame.last_key).second)
          throw Error(fmt::format("{}: key '{}' appears twice in the object at {}", context,
                                  printable(frame.last_key), place(frames)));
        break;
      }
      case Event::object_end:
      case Event::array_end:
        frames.pop_back();
        break;
      case Event::value:
        break;
    }
    return true;
  };
  try {
    return nlohmann::json::parse(text.begin(), text.end(), check);
  } catch (const nlohmann::json::parse_error& e) {
    // e.what() starts with "[json.exception.parse_error.101] ", which says nothing to a user, and
    // may quote the offending (possibly not UTF-8) bytes.
    std::string detail = e.what();
    if (const auto end = detail.find("] "); detail.starts_with("[json.") && end != detail.npos)
      detail.erase(0, end + 2);
    throw Error(
        fmt::format("{}: not valid JSON (byte {}): {}", context, e.byte, printable(detail, false)));
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: not valid JSON: {}", context, printable(e.what(), false)));
  }
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
