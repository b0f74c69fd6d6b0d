// SPDX-License-Identifier: Apache-2.0
// `cordon policy check` and `cordon policy show`.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "policy/compiler.h"
#include "policy/model.h"

namespace cordon::cli {

/// The variables of one run: ${USER} and ${HOME} from --user (default: the invoking user, the
/// one behind sudo), ${WORKSPACE} from --workspace (default: the current directory). Directory
/// values are canonicalized, because rules match the resolved paths the kernel sees.
/// With workspace_must_exist false, a workspace that does not exist (a finished agent's) is
/// taken as written, if absolute.
policy::Context make_context(const std::optional<std::string>& user,
                             const std::optional<std::string>& workspace,
                             bool workspace_must_exist = true);

/// Validates and compiles each file (host names are not resolved); prints every error on stderr.
/// Returns 0 when all are valid, 1 otherwise.
int policy_check(const std::vector<std::string>& files, const policy::Context& ctx);

/// Prints the normalized policy (variables expanded, host names resolved) on stdout.
int policy_show(const std::string& file, bool json, const policy::Context& ctx,
                policy::Resolver& resolver);

} // namespace cordon::cli
