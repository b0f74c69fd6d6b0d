// SPDX-License-Identifier: Apache-2.0
// cordon's one JSON string escaper. Records carry text an agent chose (paths, arguments): every
// record, live or stored, is written with it, so that no byte an agent picks can end a line,
// forge a field or reach a terminal as a control sequence.
#pragma once

#include <string>
#include <string_view>

namespace cordon::events {

/// Appends s to out as a JSON string: quoted; quote, backslash and control characters escaped,
/// C1 controls (U+0080..U+009F) as \u00NN, well-formed UTF-8 kept, any other byte as U+FFFD.
void json_string(std::string& out, std::string_view s);

} // namespace cordon::events
