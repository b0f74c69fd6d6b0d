// SPDX-License-Identifier: Apache-2.0
#include "bpf/introspect.h"

#include <unistd.h>

#include <bpf/bpf.h>

namespace cordon::bpf {

std::vector<LoadedObject> loaded_cordon_objects()
{
    std::vector<LoadedObject> found;
    for (std::uint32_t id = 0; bpf_prog_get_next_id(id, &id) == 0;) {
        const int fd = bpf_prog_get_fd_by_id(id);
        if (fd < 0)
            continue; // unloaded between the two calls
        bpf_prog_info info{};
        std::uint32_t len = sizeof(info);
        if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) {
            const std::string n = info.name;
            for (const char* prefix : {"net_guard_", "exec_guard_", "file_guard_", "tamper_guard"})
                if (n.rfind(prefix, 0) == 0)
                    found.push_back({.is_map = false, .name = n, .run_ns = info.run_time_ns,
                                     .run_cnt = info.run_cnt});
        }
        ::close(fd);
    }
    for (std::uint32_t id = 0; bpf_map_get_next_id(id, &id) == 0;) {
        const int fd = bpf_map_get_fd_by_id(id);
        if (fd < 0)
            continue;
        bpf_map_info info{};
        std::uint32_t len = sizeof(info);
        if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 &&
            std::string(info.name).rfind("cordon_", 0) == 0)
            found.push_back({.is_map = true, .name = info.name, .run_ns = 0, .run_cnt = 0});
        ::close(fd);
    }
    return found;
}

} // namespace cordon::bpf
