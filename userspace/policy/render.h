// SPDX-License-Identifier: Apache-2.0
// `cordon policy show`: the normalized view of what would be enforced, rule by rule.
#pragma once

#include <string>

#include "policy/model.h"

namespace cordon::policy {

std::string show_text(const Policy& p);
std::string show_json(const Policy& p);

} // namespace cordon::policy
