#pragma once
// The board's page, its script and style, and the vendored uPlot, embedded in the binary at
// build time (cmake/embed_assets.cmake writes the definition from the files).
#include <string_view>
#include <vector>

namespace lathe::board {

struct Asset {
  std::string_view name;  // the file name, served at /NAME
  std::string_view content_type;
  std::string_view bytes;
};

const std::vector<Asset>& embedded_assets();

}  // namespace lathe::board
