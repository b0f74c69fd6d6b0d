// SPDX-License-Identifier: Apache-2.0
#include "events/hooks.h"

#include <iterator>

namespace cordon::events {

namespace {

// OCSF 1.1 classes cordon's decision records belong to.
constexpr OcsfClass kBase{0, 99, "Base Event", "Other"};
constexpr OcsfClass kLaunch{1007, 1, "Process Activity", "Launch"};
constexpr OcsfClass kFileCreate{1001, 1, "File System Activity", "Create"};
constexpr OcsfClass kNetOpen{4001, 1, "Network Activity", "Open"};
constexpr OcsfClass kNetTraffic{4001, 6, "Network Activity", "Traffic"};
constexpr OcsfClass kNetListen{4001, 7, "Network Activity", "Listen"};

using enum HookGroup;

// One row per hook, in enum order. Names are an interface (JSON, the store's hook column,
// `--hook`): a row's name never changes once released.
constexpr HookInfo kRows[] = {
    {CORDON_HOOK_NONE, "none", None, false, kBase},
    {CORDON_HOOK_EXEC, "exec", Exec, false, kLaunch},
    {CORDON_HOOK_FILE_OPEN, "open", File, false, {1001, 14, "File System Activity", "Open"}},
    {CORDON_HOOK_CONNECT4, "connect4", Net, true, kNetOpen},
    {CORDON_HOOK_CONNECT6, "connect6", Net, true, kNetOpen},
    {CORDON_HOOK_SENDMSG4, "sendmsg4", Net, true, kNetTraffic},
    {CORDON_HOOK_SENDMSG6, "sendmsg6", Net, true, kNetTraffic},
    {CORDON_HOOK_FILE_CREATE, "create", File, false, kFileCreate},
    {CORDON_HOOK_FILE_UNLINK, "unlink", File, false, {1001, 4, "File System Activity", "Delete"}},
    {CORDON_HOOK_FILE_RENAME, "rename", File, false, {1001, 5, "File System Activity", "Rename"}},
    {CORDON_HOOK_FILE_LINK, "link", File, false, kFileCreate},
    {CORDON_HOOK_FILE_TRUNCATE, "truncate", File, false, {1001, 3, "File System Activity", "Update"}},
    {CORDON_HOOK_TAMPER, "tamper", None, false, {1007, 99, "Process Activity", "Other"}},
    {CORDON_HOOK_SOCKET, "socket", Net, false, kNetOpen},
    {CORDON_HOOK_UNIX_CONNECT, "unix_connect", Net, false, kNetOpen},
    {CORDON_HOOK_UNIX_SEND, "unix_send", Net, false, kNetTraffic},
    {CORDON_HOOK_FILE_SETATTR, "setattr", File, false, {1001, 6, "File System Activity", "Set Attributes"}},
    {CORDON_HOOK_LISTEN, "listen", Net, true, kNetListen},
    {CORDON_HOOK_BIND, "bind", Net, true, kNetListen},
    {CORDON_HOOK_TRUST, "trust", None, false, {2004, 1, "Detection Finding", "Create"}},
    {CORDON_HOOK_PROCESS, "process", Exec, false, kLaunch},
    {CORDON_HOOK_FILE_RECEIVE, "receive", File, false, {1001, 14, "File System Activity", "Open"}},
    {CORDON_HOOK_TASK_CROSS, "task_cross", None, false, {1007, 99, "Process Activity", "Other"}},
};

// A hook added to abi.h needs its row: without it the count differs; a row out of place would
// make every lookup after it wrong.
static_assert(std::size(kRows) == CORDON_HOOK_MAX, "every cordon_hook needs a row in kRows");
constexpr bool rows_in_enum_order()
{
    for (std::size_t i = 0; i < std::size(kRows); ++i)
        if (static_cast<std::size_t>(kRows[i].id) != i || kRows[i].name.empty())
            return false;
    return true;
}
static_assert(rows_in_enum_order(), "kRows[i].id must be i");

} // namespace

std::span<const HookInfo> hooks()
{
    return kRows;
}

const HookInfo* hook_info(std::uint16_t hook)
{
    return hook < std::size(kRows) ? &kRows[hook] : nullptr;
}

std::optional<cordon_hook> hook_from_name(std::string_view name)
{
    for (const auto& h : kRows)
        if (h.name == name)
            return h.id;
    return std::nullopt;
}

std::string_view hook_group_name(HookGroup g)
{
    switch (g) {
    case None: return "";
    case Exec: return "exec";
    case File: return "file";
    case Net: return "net";
    }
    return ""; // not reached: every group is a case above
}

} // namespace cordon::events
