// SPDX-License-Identifier: Apache-2.0
// `cordon doctor`: what this kernel offers, which backend cordon uses, and what that backend
// guarantees.
#pragma once

#include <string>
#include <vector>

#include <cordon/abi.h>

#include "bpf/features.h"

namespace cordon::control {

struct BackendPromise {
    std::vector<std::string> guarantees; ///< what the backend enforces
    std::vector<std::string> limits;     ///< what it does not, so the operator can compensate
};

/// What a backend guarantees and what it does not, in short lines.
BackendPromise backend_promise(cordon_backend b);

/// Human-readable report (one line per probe, then the backend and its promise).
std::string doctor_text(bpf::Features& f, const std::string& kernel_release);
/// The same as JSON: {"kernel", "probes": [{name, ok, detail, impact, required_by}], "backend",
/// "guarantees", "limits"}.
std::string doctor_json(bpf::Features& f, const std::string& kernel_release);

/// Exit status of `cordon doctor`: 0 when a backend is usable, 1 otherwise.
int doctor_exit_code(bpf::Features& f);

} // namespace cordon::control
