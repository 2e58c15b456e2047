#pragma once
// What the CSV readers and the table encoding share: one way to read a number from a cell, one
// way to show a cell in a message.
#include <string>
#include <string_view>

namespace lathe::detail {

// Parses a finite number that fits in float32 into `value`; otherwise returns what is wrong
// ("is not a number", "is out of range", ...), for a message that quotes the cell.
const char* parse_csv_number(std::string_view text, float& value);

// A cell for a message: at most 40 bytes then "...", control bytes as \xNN.
std::string shown_cell(std::string_view text);

}  // namespace lathe::detail
