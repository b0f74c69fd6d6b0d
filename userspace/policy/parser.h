// SPDX-License-Identifier: Apache-2.0
// YAML policy text -> validated Policy, reporting every error in one pass.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "policy/diagnostic.h"
#include "policy/model.h"

namespace cordon::policy {

/// Largest policy file cordon reads. A 20,000-rule policy is about 1.5 MiB of YAML.
inline constexpr std::size_t kMaxPolicyBytes = 8u << 20;
/// YAML nodes a policy may expand to (aliases count each time they are used): stops alias bombs
/// long before memory or time matter, and is 10x what the rule limits need.
inline constexpr std::size_t kMaxYamlNodes = 2'000'000;
/// Nesting depth a policy may use; the schema needs 5.
inline constexpr int kMaxYamlDepth = 32;

struct ParseResult {
    std::optional<Policy> policy; ///< set only when errors is empty
    Diagnostics errors;
};

/// Parses and validates an AgentPolicy's text; `file` names it in diagnostics. Any other kind
/// (a TaskOverlay included) is an error.
ParseResult parse_policy(std::string_view text, const std::string& file, const Context& ctx);

/// Parses and validates a TaskOverlay's text (Policy::overlay set); any other kind is an error.
ParseResult parse_overlay(std::string_view text, const std::string& file, const Context& ctx);

/// Parses an AgentPolicy or a TaskOverlay, whichever the text is (`cordon policy check`).
ParseResult parse_document(std::string_view text, const std::string& file, const Context& ctx);

/// Reads a policy file's text, refusing directories, special and oversized files (errors added).
std::optional<std::string> read_policy_file(const std::string& path, Diagnostics& errors);

/// Reads a policy file (refusing directories, oversized, binary or non-UTF-8 files) and parses it
/// as an AgentPolicy.
ParseResult load_policy_file(const std::string& path, const Context& ctx);

/// load_policy_file() for a TaskOverlay (`cordon task begin --policy`).
ParseResult load_overlay_file(const std::string& path, const Context& ctx);

/// load_policy_file() for either kind.
ParseResult load_document_file(const std::string& path, const Context& ctx);

/// Closest candidate within edit distance 2, for "did you mean" hints; empty if none.
std::string did_you_mean(std::string_view word, const std::vector<std::string_view>& candidates);

} // namespace cordon::policy
