// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <string>
#include <vector>

namespace cordon::policy {

/// One problem in a policy file, printed as `file:line:column: what is wrong; what is expected`.
/// line/column are 1-based; 0 means the whole file.
struct Diagnostic {
    std::string file;
    int line = 0;
    int column = 0;
    std::string message;

    std::string str() const
    {
        if (line <= 0)
            return file + ": " + message;
        return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
    }
};

using Diagnostics = std::vector<Diagnostic>;

} // namespace cordon::policy
