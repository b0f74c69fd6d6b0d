// SPDX-License-Identifier: Apache-2.0
#include "bpf/log.h"

#include <cstdarg>
#include <cstdio>
#include <deque>
#include <mutex>
#include <string>

#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

namespace cordon::bpf {
namespace {

std::mutex verifier_mu;
std::deque<std::string> verifier_tail; ///< the last lines of the last program load log

/// Keeps the last lines of each verifier log libbpf passes on ("-- BEGIN PROG LOAD LOG --"
/// ... "-- END PROG LOAD LOG --"), which say why a program was refused.
void keep_verifier_lines(const char* text)
{
    static bool in_log = false;
    std::lock_guard lk(verifier_mu);
    std::string t(text);
    for (std::size_t at = 0; at < t.size();) {
        const auto nl = t.find('\n', at);
        const std::string line = t.substr(at, nl == std::string::npos ? std::string::npos : nl - at);
        at = nl == std::string::npos ? t.size() : nl + 1;
        if (line.find("BEGIN PROG LOAD LOG") != std::string::npos) {
            in_log = true;
            verifier_tail.clear();
        } else if (line.find("END PROG LOAD LOG") != std::string::npos) {
            in_log = false;
        } else if (in_log && !line.empty()) {
            verifier_tail.push_back(line);
            if (verifier_tail.size() > 4)
                verifier_tail.pop_front();
        }
    }
}

int to_spdlog(enum libbpf_print_level level, const char* fmt, va_list args)
{
    char buf[4096];
    std::vsnprintf(buf, sizeof(buf), fmt, args);
    if (level == LIBBPF_WARN)
        keep_verifier_lines(buf);
    if (level == LIBBPF_DEBUG && spdlog::get_level() > spdlog::level::trace)
        return 0;
    std::string line(buf);
    while (!line.empty() && line.back() == '\n')
        line.pop_back();
    spdlog::debug("libbpf: {}", line);
    return 0;
}

} // namespace

void forget_verifier_words()
{
    std::lock_guard lk(verifier_mu);
    verifier_tail.clear();
}

std::string last_verifier_words()
{
    std::lock_guard lk(verifier_mu);
    std::string out;
    for (const auto& l : verifier_tail)
        out += (out.empty() ? "" : " | ") + l;
    return out;
}

void log_libbpf_to_spdlog()
{
    libbpf_set_print(to_spdlog);
}

} // namespace cordon::bpf
