// SPDX-License-Identifier: Apache-2.0
#include "bpf/log.h"

#include <cstdarg>
#include <cstdio>
#include <string>

#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

namespace cordon::bpf {
namespace {

int to_spdlog(enum libbpf_print_level level, const char* fmt, va_list args)
{
    if (level == LIBBPF_DEBUG && spdlog::get_level() > spdlog::level::trace)
        return 0;
    char buf[1024];
    std::vsnprintf(buf, sizeof(buf), fmt, args);
    std::string line(buf);
    while (!line.empty() && line.back() == '\n')
        line.pop_back();
    spdlog::debug("libbpf: {}", line);
    return 0;
}

} // namespace

void log_libbpf_to_spdlog()
{
    libbpf_set_print(to_spdlog);
}

} // namespace cordon::bpf
