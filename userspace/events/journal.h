// SPDX-License-Identifier: Apache-2.0
// The journal sink: each stored record also sent to systemd-journald as one structured entry
// (MESSAGE, PRIORITY, SYSLOG_IDENTIFIER=cordond and CORDON_* fields, the whole OCSF record in
// CORDON_RECORD), so that what already collects the journal (journald forwarding, Fluent Bit,
// Vector) takes cordon's records with no agent of its own. Written in the journal's native
// protocol (datagrams on its socket) rather than through libsystemd, whose sd_journal_send()
// cannot name the socket: a journal namespace (`systemd-journald NAME`, socket
// /run/systemd/journal.NAME/socket) is chosen by path.
#pragma once

#include <filesystem>
#include <string>

#include "events/store.h"

namespace cordon::events {

/// The system journal's socket.
inline const char* const kJournalSocket = "/run/systemd/journal/socket";

class JournalSink {
public:
    explicit JournalSink(std::filesystem::path socket);
    ~JournalSink();
    JournalSink(const JournalSink&) = delete;
    JournalSink& operator=(const JournalSink&) = delete;

    /// Sends one entry; 0, or the errno (ENOENT/ECONNREFUSED: no journald there; EAGAIN: it
    /// did not take the entry within a second; EMSGSIZE: too large for one datagram).
    int send(const store::Record& r);
    const std::filesystem::path& socket() const { return path_; }

private:
    std::filesystem::path path_;
    int fd_ = -1;
};

/// The entry's fields in the native protocol: "NAME=value\n", or for a value holding a newline
/// "NAME\n" + its length (64-bit little endian) + value + "\n". Exposed for tests.
std::string journal_entry(const store::Record& r);

} // namespace cordon::events
