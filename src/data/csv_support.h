#pragma once
// What the CSV readers and the table encoding share: one way to read a number from a cell, one
// way to show a cell in a message, one way to list the columns a file has.
#include <string>
#include <string_view>
#include <vector>

namespace lathe::detail {

// Parses a finite number that fits in float32 into `value`; otherwise returns what is wrong
// ("is not a number", "is out of range", ...), for a message that quotes the cell.
const char* parse_csv_number(std::string_view text, float& value);

// A cell for a message: at most 40 bytes then "...", control bytes as \xNN.
std::string shown_cell(std::string_view text);

// "a, b, c" for a message that a column is missing; when the header read as one column that
// holds another delimiter, what that suggests.
std::string listed_columns(const std::vector<std::string>& names);

}  // namespace lathe::detail
