// SPDX-License-Identifier: Apache-2.0
#include "cli/stop.h"

#include <cstdio>
#include <utility>

#include "api/client.h"
#include "common/clock.h"
#include "common/error.h"

namespace cordon::cli {

api::Client connect_or_fail()
{
    auto c = api::Client::connect(api::socket_path());
    if (!c)
        throw Error("cordond is not running (no daemon on " + api::socket_path() +
                    "); start it with `systemctl start cordond` or `cordond &`");
    return std::move(*c);
}

int stop_agent(api::Op op, const std::string& name, const std::string& reason)
{
    auto c = connect_or_fail();
    auto q = api::request(op);
    q.name = name;
    if (!reason.empty())
        q.reason = reason;
    q.sent_ns = monotonic_ns(); // the reply counts from here: a wait to be read shows
    const auto r = c.call(q);
    if (op == api::Op::Kill)
        std::printf("killed agent %s: the kernel refused it everything %.1f ms after the request "
                    "was sent; its cgroup was empty after %.1f ms\n",
                    name.c_str(), r.at("flag_ms").get<double>(), r.at("elapsed_ms").get<double>());
    else
        std::printf("froze agent %s in %.1f ms; `cordon thaw %s` resumes it, `cordon kill %s` "
                    "ends it\n",
                    name.c_str(), r.at("elapsed_ms").get<double>(), name.c_str(), name.c_str());
    return 0;
}

} // namespace cordon::cli
