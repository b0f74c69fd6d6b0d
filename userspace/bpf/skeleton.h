// SPDX-License-Identifier: Apache-2.0
// A non-copyable RAII owner for a bpftool-generated skeleton, following the
// open -> configure -> load -> attach order. Destroying it detaches every link and closes every
// program and map fd the skeleton owns.
#pragma once

#include <cerrno>
#include <string>
#include <utility>

#include <bpf/libbpf.h>

#include "common/error.h"

namespace cordon::bpf {

/// The generated free functions of one skeleton; specialised by CORDON_SKELETON_OPS.
template <typename Skel> struct SkeletonOps;

#define CORDON_SKELETON_OPS(name)                                                              \
    template <> struct SkeletonOps<name> {                                                     \
        static constexpr const char* kName = #name;                                            \
        static name* open(const struct bpf_object_open_opts* o) { return name##__open_opts(o); } \
        static int load(name* s) { return name##__load(s); }                                  \
        static void destroy(name* s) { name##__destroy(s); }                                  \
    }

template <typename Skel> class Skeleton {
public:
    using Ops = SkeletonOps<Skel>;

    /// Opens (parses) the embedded object. Nothing reaches the kernel yet.
    static Skeleton open()
    {
        Skel* s = Ops::open(nullptr);
        if (!s)
            throw Error(std::string("cannot open BPF object ") + Ops::kName + ": " +
                        errno_text(errno));
        return Skeleton(s);
    }

    Skeleton(Skeleton&& o) noexcept : skel_(std::exchange(o.skel_, nullptr)) {}
    Skeleton& operator=(Skeleton&& o) noexcept
    {
        if (this != &o) {
            reset();
            skel_ = std::exchange(o.skel_, nullptr);
        }
        return *this;
    }
    Skeleton(const Skeleton&) = delete;
    Skeleton& operator=(const Skeleton&) = delete;
    ~Skeleton() { reset(); }

    /// Loads every program whose autoload is on; returns 0 or a negative errno. Callers turn the
    /// errno into a message that names the missing feature.
    [[nodiscard]] int load() { return Ops::load(skel_); }

    Skel* operator->() const { return skel_; }
    Skel* get() const { return skel_; }
    struct bpf_object* object() const { return skel_->obj; }

private:
    explicit Skeleton(Skel* s) : skel_(s) {}
    void reset()
    {
        if (skel_)
            Ops::destroy(skel_);
        skel_ = nullptr;
    }
    Skel* skel_ = nullptr;
};

} // namespace cordon::bpf
