// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <string>

#include "policy/compiler.h"
#include "policy/parser.h"

namespace cordon::policy::testing {

/// The context unit tests expand variables with.
inline Context test_context()
{
    return {.home = "/home/ada", .workspace = "/work/repo", .user = "ada"};
}

/// A valid policy's header, to which a case appends its spec (indented two spaces).
inline std::string with_spec(const std::string& spec)
{
    return "apiVersion: cordon.dev/v1\n"
           "kind: AgentPolicy\n"
           "metadata:\n"
           "  name: t\n"
           "spec:\n" +
           spec;
}

/// Minimal spec with all three classes; `extra` goes first under spec.
inline std::string minimal(const std::string& extra = "")
{
    return with_spec(extra + "  exec:\n    default: deny\n  files:\n    default: allow\n"
                             "  network:\n    default: deny\n");
}

inline ParseResult parse(const std::string& text)
{
    return parse_policy(text, "p.yaml", test_context());
}

} // namespace cordon::policy::testing
