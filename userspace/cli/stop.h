// SPDX-License-Identifier: Apache-2.0
// `cordon kill` and `cordon freeze`: one request to cordond, timed from when it was sent. Built
// into both the static front end (cli/front.cpp) and the full command line.
#pragma once

#include <string>

#include "api/protocol.h"

namespace cordon::api {
class Client;
}

namespace cordon::cli {

/// A connection to cordond, or Error saying how to start it (every verb that needs cordond).
api::Client connect_or_fail();

/// Sends a kill or freeze of agent `name` and prints what happened; 0, or throws Error.
int stop_agent(api::Op op, const std::string& name, const std::string& reason);

} // namespace cordon::cli
