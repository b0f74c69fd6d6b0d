// SPDX-License-Identifier: Apache-2.0
// cordon's forensic verbs: `trace` (live, from cordond), `events` and `events verify` (the
// store), `report` (one agent's life from the store).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "api/client.h"
#include "cli/commands.h"
#include "common/error.h"
#include "events/format.h"
#include "events/hooks.h"
#include "events/store.h"
#include "policy/duration.h"

namespace cordon::cli {

namespace {

using json = nlohmann::json;
namespace store = events::store;

/// --hook values: the groups exec, file, net, single hook names (events/hooks), or "action";
/// throws naming a bad one.
std::set<std::string> expand_hooks(const std::vector<std::string>& wanted)
{
    std::set<std::string> out;
    for (const auto& w : wanted) {
        bool known = w == "action";
        if (known)
            out.insert(w);
        for (const auto& h : events::hooks()) {
            if (h.id == CORDON_HOOK_NONE) // no record has it: not a filter
                continue;
            if (h.name == w ||
                (h.group != events::HookGroup::None && events::hook_group_name(h.group) == w)) {
                out.insert(std::string(h.name));
                known = true;
            }
        }
        if (!known)
            throw Error("unknown --hook '" + w + "': use exec, file, net, tamper, trust, action, "
                        "or one hook name (open, connect4, ...; docs/forensics.md lists them)");
    }
    return out;
}

std::set<std::string> check_verdicts(const std::vector<std::string>& verdicts)
{
    static const std::set<std::string, std::less<>> known = {"allow", "deny", "audit", "kill",
                                                             "freeze"};
    for (const auto& v : verdicts)
        if (!known.count(v))
            throw Error("unknown --verdict '" + v + "': use allow, deny, audit, kill or freeze");
    return {verdicts.begin(), verdicts.end()};
}

std::string local_time(std::int64_t ns, bool with_date = true)
{
    const std::time_t s = static_cast<std::time_t>(ns / 1'000'000'000);
    std::tm tm{};
    ::localtime_r(&s, &tm);
    char buf[64];
    std::strftime(buf, sizeof(buf), with_date ? "%Y-%m-%dT%H:%M:%S" : "%H:%M:%S", &tm);
    return fmt::format("{}.{:03}", buf, (ns / 1'000'000) % 1000);
}

} // namespace

std::int64_t parse_time(const std::string& what, const std::string& text)
{
    const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    if (!text.empty() && text[0] == '@') {
        try {
            std::size_t used = 0;
            const auto s = std::stoll(text.substr(1), &used);
            if (used == text.size() - 1)
                return s * 1'000'000'000;
        } catch (const std::exception&) {
        }
    }
    std::string why;
    if (auto ms = policy::parse_duration_ms(text, why))
        return now - static_cast<std::int64_t>(*ms) * 1'000'000;
    std::tm tm{};
    const bool utc = !text.empty() && text.back() == 'Z';
    const std::string t = utc ? text.substr(0, text.size() - 1) : text;
    for (const char* f : {"%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"}) {
        tm = {};
        const char* end = ::strptime(t.c_str(), f, &tm);
        if (end && *end == 0) {
            tm.tm_isdst = -1;
            const std::time_t s = utc ? ::timegm(&tm) : std::mktime(&tm);
            return static_cast<std::int64_t>(s) * 1'000'000'000;
        }
    }
    throw Error(what + " '" + text + "' is not a time: use a duration ago (30m, 1h, 2d), " +
                "a date and time (2026-11-29T10:00:00, local; add Z for UTC) or @UNIX_SECONDS");
}

namespace {

/// What was accessed, safe to print (paths are the agent's choice: no newline or escape in them
/// reaches the terminal as such).
std::string object_of(const store::Row& r)
{
    if (!r.dest.empty())
        return r.dest.find(':') != std::string::npos ? fmt::format("[{}]:{}", r.dest, r.port)
                                                     : fmt::format("{}:{}", r.dest, r.port);
    return events::display_safe(r.path);
}

std::string csv_field(const std::string& in)
{
    // A leading = + - @ (or a tab or CR before one) would make a spreadsheet evaluate the
    // field: quote it as text. Control bytes and escapes are shown escaped, as on a terminal.
    const std::string safe = events::display_safe(in);
    const std::string s = !safe.empty() && std::string_view("=+-@\t\r").find(in[0]) != std::string_view::npos
                              ? "'" + safe
                              : safe;
    if (s.find_first_of(",\"\n\r") == std::string::npos)
        return s;
    std::string out = "\"";
    for (char c : s)
        out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
}

/// The parts of a stored record's JSON a report reads (unmapped: cordon's own fields).
json unmapped(const store::Row& r)
{
    const auto j = json::parse(r.json, nullptr, false);
    if (j.is_discarded() || !j.is_object())
        return json::object();
    return j.value("unmapped", json::object());
}

} // namespace

int trace(const TraceOptions& o)
{
    const auto hooks = expand_hooks(o.hooks);
    const auto verdicts = check_verdicts(o.verdicts);
    auto c = connect_or_fail();
    auto q = api::request(api::Op::Subscribe);
    q.name = o.name;
    c.call(q);
    const bool tty = ::isatty(STDOUT_FILENO) && !o.json;
    std::fprintf(stderr, "tracing %s from cordond (Ctrl-C ends)\n",
                 o.name ? ("agent " + *o.name).c_str() : "every agent");
    for (;;) {
        const auto line = c.next(-1);
        if (!line)
            continue;
        if (line->contains("action")) {
            if (!hooks.empty() && !hooks.count("action"))
                continue;
            if (!verdicts.empty())
                continue;
            const auto& a = (*line)["action"];
            if (o.json) {
                std::printf("%s\n", json{{"action", a}}.dump(-1, ' ', false, json::error_handler_t::replace).c_str());
            } else {
                std::printf("%s%s action %s %s%s%s\n", tty ? "\033[36m" : "",
                            local_time(a.value("time_ms", std::int64_t{0}) * 1'000'000, false).c_str(),
                            a.value("op", "").c_str(), a.value("name", a.value("agent", "")).c_str(),
                            a.value("result", "") == "ok" ? "" : (" (" + a.value("error", std::string("error")) + ")").c_str(),
                            tty ? "\033[0m" : "");
            }
            std::fflush(stdout);
            continue;
        }
        if (!line->contains("event"))
            continue;
        const auto& e = (*line)["event"];
        // The record as stored (docs/forensics.md): cordon's own fields are under "unmapped".
        const auto u = e.value("unmapped", json::object());
        const std::string hook = u.value("hook", ""), verdict = u.value("verdict", "");
        if ((!hooks.empty() && !hooks.count(hook)) || (!verdicts.empty() && !verdicts.count(verdict)))
            continue;
        if (o.json) {
            std::printf("%s\n", e.dump(-1, ' ', false, json::error_handler_t::replace).c_str());
        } else {
            const char* colour = !tty                  ? ""
                                 : verdict == "deny"   ? "\033[31m"
                                 : verdict == "kill"   ? "\033[1;35m"
                                 : verdict == "freeze" ? "\033[1;34m"
                                 : verdict == "audit"  ? "\033[33m"
                                 : hook == "trust"     ? "\033[1;33m"
                                                       : "\033[2m";
            std::printf("%s%s %s: %s%s\n", colour,
                        local_time(u.value("time_ns", std::int64_t{0}), false).c_str(),
                        u.value("agent", "").c_str(), line->value("line", hook + " " + verdict).c_str(),
                        tty ? "\033[0m" : "");
        }
        std::fflush(stdout);
    }
}

int events_query(const EventsOptions& o)
{
    if (o.json && o.csv)
        throw Error("--json and --csv: choose one");
    store::Filter f;
    f.agent = o.name;
    if (o.since)
        f.since_ns = parse_time("--since", *o.since);
    if (o.until)
        f.until_ns = parse_time("--until", *o.until);
    const auto verdicts = check_verdicts(o.verdicts);
    f.verdicts.assign(verdicts.begin(), verdicts.end());
    const auto hooks = expand_hooks(o.hooks);
    for (const auto& h : hooks) {
        if (h == "action")
            f.kinds.push_back("action");
        else
            f.hooks.push_back(h);
    }
    if (f.kinds.size() && f.hooks.size())
        throw Error("--hook action cannot be combined with other hooks; query them apart");
    f.path_glob = o.path;
    f.dest_cidr = o.dest;
    f.limit = o.limit;
    if (o.csv)
        std::printf("time,agent,kind,hook,verdict,pid,ppid,uid,path,dest,port,id,seq\n");
    // One row at a time: a store of millions of records is listed in bounded memory.
    const auto n = store::for_each(o.store, f, [&](store::Row&& r) {
        if (o.json) {
            std::printf("%s\n", r.json.c_str());
        } else if (o.csv) {
            std::printf("%s\n", fmt::format("{},{},{},{},{},{},{},{},{},{},{},{},{}", local_time(r.time_ns),
                                            csv_field(r.agent), r.kind, csv_field(r.hook), r.verdict, r.pid,
                                            r.ppid, r.uid, csv_field(r.path), r.dest, r.port, r.id, r.seq)
                                    .c_str());
        } else {
            std::printf("%s\n", fmt::format("{} {} {} {} {} pid {}", local_time(r.time_ns), r.agent,
                                            r.verdict, r.hook, object_of(r), r.pid).c_str());
        }
    });
    if (!o.json && !o.csv)
        std::fprintf(stderr, "%zu records\n", n);
    return 0;
}

int events_verify(const std::string& db, const std::optional<std::string>& name)
{
    const auto v = store::verify(db, name);
    if (v.ok) {
        std::printf("ok: %llu records in %zu chains are intact\n",
                    static_cast<unsigned long long>(v.records), v.per_agent.size());
        for (const auto& [agent, n] : v.per_agent)
            std::printf("  %s: %llu\n", agent.c_str(), static_cast<unsigned long long>(n));
        return 0;
    }
    std::printf("TAMPERED: agent %s, record seq %lld (id %lld): %s\n", v.agent.c_str(),
                static_cast<long long>(v.seq), static_cast<long long>(v.id), v.reason.c_str());
    return 1;
}

namespace {

// What one agent's records say, gathered in one pass over them for `report`, in bounded memory
// whatever the store holds: at most kMaxObjects distinct denied paths and destinations are
// ranked (denials of objects first seen after that are counted, not ranked), and at most
// kMaxListed tier changes, operator actions and execs are listed (the rest counted; `cordon
// events` lists every one).
constexpr std::size_t kMaxObjects = 50'000;
constexpr std::size_t kMaxListed = 10'000;
struct Activity {
    std::uint64_t records = 0;
    std::int64_t first_ns = 0, last_ns = 0;
    std::map<std::pair<std::string, std::string>, std::uint64_t> by; ///< (hook, verdict) -> count
    std::map<std::string, std::uint64_t> paths, dests;               ///< denied objects -> count
    std::uint64_t unranked = 0; ///< denials of objects beyond kMaxObjects
    json tiers = json::array(), actions = json::array(), procs = json::array();
    std::uint64_t unlisted_tiers = 0, unlisted_actions = 0, unlisted_procs = 0;
    void add(const store::Row& r);
};

void count_object(std::map<std::string, std::uint64_t>& m, std::string key, std::uint64_t& unranked)
{
    if (auto it = m.find(key); it != m.end())
        ++it->second;
    else if (m.size() < kMaxObjects)
        m.emplace(std::move(key), 1);
    else
        ++unranked;
}

void list(json& to, std::uint64_t& unlisted, json item)
{
    if (to.size() < kMaxListed)
        to.push_back(std::move(item));
    else
        ++unlisted;
}

json tier_change_of(const store::Row& r)
{
    const auto u = unmapped(r);
    return {{"time", local_time(r.time_ns)}, {"from", u.value("old_tier", "")},
            {"to", u.value("new_tier", "")}, {"cause", u.value("cause", "")},
            {"score", u.value("score", 0)}};
}

json action_of(const store::Row& r)
{
    const auto u = unmapped(r);
    json a = {{"time", local_time(r.time_ns)}, {"op", r.hook}, {"result", r.verdict}};
    for (const char* k : {"reason", "error", "mode", "id", "target"})
        if (u.contains(k))
            a[k] = u[k];
    return a;
}

json process_of(const store::Row& r)
{
    const auto u = unmapped(r);
    std::string cmd;
    for (const auto& s : u.value("argv", json::array()))
        cmd += (cmd.empty() ? "" : " ") + events::display_safe(s.get<std::string>());
    if (u.value("argv_truncated", false))
        cmd += " ...";
    // The file that ran when the kernel resolved it (a link or relative name given), else the
    // name the exec was given.
    const std::string ran = u.value("exec_file", std::string());
    return {{"time", local_time(r.time_ns)}, {"pid", r.pid}, {"ppid", r.ppid},
            {"uid", r.uid}, {"path", events::display_safe(ran.empty() ? r.path : ran)}, {"cmd", cmd}};
}

void Activity::add(const store::Row& r)
{
    if (records++ == 0)
        first_ns = r.time_ns;
    last_ns = r.time_ns;
    if (r.kind == "decision") {
        ++by[{r.hook, r.verdict}];
        if (r.verdict == "deny" || r.verdict == "kill" || r.verdict == "freeze") {
            if (!r.dest.empty())
                count_object(dests, object_of(r), unranked);
            else if (!r.path.empty())
                count_object(paths, events::display_safe(r.path), unranked);
        }
    } else if (r.kind == "trust") {
        list(tiers, unlisted_tiers, tier_change_of(r));
    } else if (r.kind == "action") {
        list(actions, unlisted_actions, action_of(r));
    } else if (r.kind == "process") {
        list(procs, unlisted_procs, process_of(r));
    }
}

// The ten most frequent entries, most frequent first, ties by name.
json top_ten(const std::map<std::string, std::uint64_t>& m)
{
    std::vector<std::pair<std::string, std::uint64_t>> v(m.begin(), m.end());
    std::sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.second > b.second || (a.second == b.second && a.first < b.first); });
    if (v.size() > 10)
        v.resize(10);
    json out = json::array();
    for (auto& [k, n] : v)
        out.push_back({{"what", k}, {"count", n}});
    return out;
}

// Gaps: the agent's own (records of it the kernel had no room for) and cordond's (a full
// disk, a store that fell behind), within the agent's time span.
json gaps_in_span(const std::string& db, const std::string& name, const Activity& a)
{
    store::Filter gf;
    gf.kinds = {"gap"};
    gf.since_ns = a.first_ns;
    gf.until_ns = a.last_ns;
    json gaps = json::array();
    std::uint64_t unlisted = 0;
    store::for_each(db, gf, [&](store::Row&& g) {
        if (g.agent != name && g.agent != "cordond")
            return;
        const auto u = unmapped(g);
        list(gaps, unlisted, {{"time", local_time(g.time_ns)},
                              {"lost", u.value("lost", std::uint64_t{0})},
                              {"reason", u.value("reason", "")}});
    });
    return gaps;
}

// The report as one JSON document: what --json prints and what the text form is printed from.
json build_report(const std::string& name, const std::string& db, const Activity& a)
{
    json counts = json::array();
    for (const auto& [k, n] : a.by)
        counts.push_back({{"hook", k.first}, {"verdict", k.second}, {"count", n}});
    return {{"agent", name},
            {"first", local_time(a.first_ns)},
            {"last", local_time(a.last_ns)},
            {"records", a.records},
            {"decisions", counts},
            {"top_denied_paths", top_ten(a.paths)},
            {"top_denied_destinations", top_ten(a.dests)},
            {"denials_unranked", a.unranked},
            {"tier_changes", a.tiers},
            {"operator_actions", a.actions},
            {"processes", a.procs},
            {"not_listed", {{"tier_changes", a.unlisted_tiers},
                            {"operator_actions", a.unlisted_actions},
                            {"processes", a.unlisted_procs}}},
            {"gaps", gaps_in_span(db, name, a)}};
}

void print_summary(const json& rep)
{
    std::printf("agent %s: %zu records from %s to %s\n", rep["agent"].get<std::string>().c_str(),
                rep["records"].get<std::size_t>(), rep["first"].get<std::string>().c_str(),
                rep["last"].get<std::string>().c_str());
    std::printf("\ndecisions by hook and verdict:\n");
    for (const auto& c : rep["decisions"])
        std::printf("  %-12s %-7s %llu\n", c["hook"].get<std::string>().c_str(),
                    c["verdict"].get<std::string>().c_str(),
                    static_cast<unsigned long long>(c["count"].get<std::uint64_t>()));
    for (auto [title, key] : {std::pair{"top denied paths", "top_denied_paths"},
                              std::pair{"top denied destinations", "top_denied_destinations"}}) {
        std::printf("\n%s:\n", title);
        if (rep[key].empty())
            std::printf("  none\n");
        for (const auto& t : rep[key])
            std::printf("  %6llu  %s\n", static_cast<unsigned long long>(t["count"].get<std::uint64_t>()),
                        t["what"].get<std::string>().c_str());
    }
    if (const auto n = rep["denials_unranked"].get<std::uint64_t>())
        std::printf("  (%llu denials of objects beyond the first %zu distinct ones are not ranked)\n",
                    static_cast<unsigned long long>(n), kMaxObjects);
}

// Gaps, tier changes and operator actions: the events that explain the decisions above.
void print_timeline(const json& rep)
{
    const auto& gaps = rep["gaps"];
    std::printf("\nrecords not stored in this span (this agent's, and cordond's own):\n");
    if (gaps.empty())
        std::printf("  none\n");
    for (const auto& g : gaps)
        std::printf("  %s  %llu (%s)\n", g["time"].get<std::string>().c_str(),
                    static_cast<unsigned long long>(g["lost"].get<std::uint64_t>()),
                    events::display_safe(g["reason"].get<std::string>()).c_str());
    const auto& tiers = rep["tier_changes"];
    std::printf("\ntier changes:\n");
    if (tiers.empty())
        std::printf("  none\n");
    for (const auto& t : tiers)
        std::printf("  %s  %s -> %s (%s) score %d\n", t["time"].get<std::string>().c_str(),
                    t["from"].get<std::string>().c_str(), t["to"].get<std::string>().c_str(),
                    t["cause"].get<std::string>().c_str(), t["score"].get<int>());
    const auto& actions = rep["operator_actions"];
    std::printf("\noperator actions:\n");
    if (actions.empty())
        std::printf("  none\n");
    for (const auto& a : actions)
        std::printf("  %s  %s %s%s\n", a["time"].get<std::string>().c_str(),
                    a["op"].get<std::string>().c_str(), a["result"].get<std::string>().c_str(),
                    a.contains("reason") ? (": " + a["reason"].get<std::string>()).c_str() : "");
}

// The process tree: each exec under the process that ran it (by parent pid), in time order;
// an exec of a pid seen before replaces the image of the same process.
void print_process_tree(const json& procs)
{
    std::printf("\nprocess tree (execs; trace: exec or all records them):\n");
    if (procs.empty())
        std::printf("  none recorded\n");
    std::map<std::uint32_t, std::vector<std::size_t>> children, images;
    std::set<std::uint32_t> pids;
    for (std::size_t i = 0; i < procs.size(); ++i)
        pids.insert(procs[i]["pid"].get<std::uint32_t>());
    std::vector<std::uint32_t> roots;
    for (std::size_t i = 0; i < procs.size(); ++i) {
        const auto pid = procs[i]["pid"].get<std::uint32_t>(), ppid = procs[i]["ppid"].get<std::uint32_t>();
        if (images[pid].empty()) {
            if (pids.count(ppid) && ppid != pid)
                children[ppid].push_back(pid);
            else
                roots.push_back(pid);
        }
        images[pid].push_back(i);
    }
    std::set<std::uint32_t> printed;
    std::function<void(std::uint32_t, int)> show = [&](std::uint32_t pid, int depth) {
        if (!printed.insert(pid).second || depth > 64)
            return;
        for (std::size_t k = 0; k < images[pid].size(); ++k) {
            const auto& p = procs[images[pid][k]];
            std::printf("  %*s%s %s [%s]\n", depth * 2, "", k ? "  then" : fmt::format("pid {}", pid).c_str(),
                        p["path"].get<std::string>().c_str(), p["cmd"].get<std::string>().c_str());
        }
        for (auto c : children[pid])
            show(c, depth + 1);
    };
    for (auto r : roots)
        show(r, 0);
}

} // namespace

int report(const std::string& name, const std::string& db, bool as_json)
{
    store::Filter f;
    f.agent = name;
    Activity a;
    store::for_each(db, f, [&](store::Row&& r) { a.add(r); });
    if (a.records == 0)
        throw Error("no records of agent '" + name + "' in " + db +
                    " (`cordon events` lists what the store holds)");
    const json rep = build_report(name, db, a);
    if (as_json) {
        std::printf("%s\n", rep.dump(2, ' ', false, json::error_handler_t::replace).c_str());
        return 0;
    }
    print_summary(rep);
    print_timeline(rep);
    print_process_tree(rep["processes"]);
    for (const auto& [what, n] : rep["not_listed"].items())
        if (n.get<std::uint64_t>())
            std::printf("\n%llu more %s not listed (at most %zu each; `cordon events` lists them)\n",
                        static_cast<unsigned long long>(n.get<std::uint64_t>()), what.c_str(), kMaxListed);
    return 0;
}

} // namespace cordon::cli
