// SPDX-License-Identifier: Apache-2.0
// The way from policy text to a policy that is safe to apply: parse and validate, resolve host
// names, test-compile. Every caller (cordon run, cordond, `cordon policy check|show`) goes this
// one way, so a policy accepted by one is accepted by all.
//
// It is two steps because they cost differently: check_document() is quick and pure (no DNS,
// no files, no clock), resolve_and_compile() waits on DNS. Each takes its input by value and
// returns a value, so the second can run on a worker thread while the thread that owns the BPF
// objects keeps serving the kill switch.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "policy/compiler.h"
#include "policy/diagnostic.h"
#include "policy/model.h"

namespace cordon::policy {

/// The id of a trial compile. Its entries are never written to a map (the real compile takes a
/// fresh id from the program set), so any id would do; 1 is one the kernel could hold, so the
/// trial meets the same limits as the real thing.
inline constexpr std::uint32_t kTrialPolicyId = 1;

/// Which kinds of document a step accepts.
enum class DocumentKind : std::uint8_t {
    AgentPolicy, ///< an agent's policy (cordon run, attach, apply)
    TaskOverlay, ///< a task's overlay (cordon task begin --policy)
    Either,      ///< whichever the text is (cordon policy check|show)
};

/// What a step made of a document: the policy, or every reason it is not valid.
struct Prepared {
    std::optional<Policy> policy; ///< set only when errors is empty
    Diagnostics errors;
    Diagnostics warnings; ///< valid, but worth saying (an allow rule's host that did not resolve)
};

/// Step 1, pure: refuses text over kMaxPolicyBytes, parses and validates it as `kind` with the
/// variables of `ctx`, and sets `mode` (cordon run --mode) over the document's own.
Prepared check_document(std::string_view text, const std::string& file, const Context& ctx,
                        DocumentKind kind, std::optional<Mode> mode = std::nullopt);

/// check_document() on a file's text, which read_policy_file() reads (and may refuse).
Prepared check_file(const std::string& path, const Context& ctx, DocumentKind kind);

/// Compiles the policy with kTrialPolicyId, so that what only compilation finds (conflicts,
/// sizes) shows before any map is touched. Host names are compiled as they stand (unresolved:
/// no addresses), which is what `cordon policy check` wants.
Prepared trial_compile(Prepared checked);

/// Step 2, slow: resolves the host names of a checked policy with `resolver` (an unresolvable
/// allow rule's host is a warning, a deny rule's an error), then trial_compile(). `checked`
/// without a policy is returned as it is.
Prepared resolve_and_compile(Prepared checked, Resolver& resolver);

/// Both steps, for callers that may wait on DNS where they are.
Prepared prepare_document(std::string_view text, const std::string& file, const Context& ctx,
                          DocumentKind kind, std::optional<Mode> mode, Resolver& resolver);

} // namespace cordon::policy
