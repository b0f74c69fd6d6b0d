# SPDX-License-Identifier: Apache-2.0
# Compiles BPF programs with clang and wraps each in a libbpf skeleton.
#
#   cordon_bpf_skeleton(<name> [SOURCES <src>...])
#     compiles bpf/<name>.bpf.c (or, with SOURCES, each bpf/<src>.bpf.c, linked into one object
#     with `bpftool gen object`) to <build>/bpf/<name>.bpf.o, generates <name>.skel.h with
#     `bpftool gen skeleton`, and defines the INTERFACE target cordon::bpf_<name> whose users may
#     #include "<name>.skel.h". The skeleton struct is `struct <name>_bpf`.
#     Editing a .bpf.c or any header it includes rebuilds it (clang writes a depfile).

find_program(CORDON_BPF_CLANG NAMES clang clang-14 clang-15 clang-16 REQUIRED)
find_program(CORDON_BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)
find_program(CORDON_LLVM_STRIP NAMES llvm-strip llvm-strip-14 llvm-strip-15 llvm-strip-16 REQUIRED)

if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  set(CORDON_BPF_ARCH x86)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
  set(CORDON_BPF_ARCH arm64)
else()
  message(FATAL_ERROR "cordon: no BPF arch define for ${CMAKE_SYSTEM_PROCESSOR}")
endif()

set(CORDON_BPF_OUT ${PROJECT_BINARY_DIR}/bpf)
set(CORDON_VMLINUX_DIR ${PROJECT_BINARY_DIR}/vmlinux)
file(MAKE_DIRECTORY ${CORDON_BPF_OUT} ${CORDON_VMLINUX_DIR})

# vmlinux.h: generated into the build tree from the running kernel's BTF (never committed), or
# taken from CORDON_VMLINUX_H. CO-RE relocates field offsets at load time, so an object built
# against one kernel's BTF loads on another (the VM tier checks this with Debian's 6.1 kernel).
set(CORDON_VMLINUX_H_OUT ${CORDON_VMLINUX_DIR}/vmlinux.h)
if(CORDON_VMLINUX_H)
  if(NOT EXISTS "${CORDON_VMLINUX_H}")
    message(FATAL_ERROR "CORDON_VMLINUX_H=${CORDON_VMLINUX_H} does not exist")
  endif()
  add_custom_command(OUTPUT ${CORDON_VMLINUX_H_OUT}
    COMMAND ${CMAKE_COMMAND} -E copy ${CORDON_VMLINUX_H} ${CORDON_VMLINUX_H_OUT}
    DEPENDS ${CORDON_VMLINUX_H}
    COMMENT "Using provided vmlinux.h ${CORDON_VMLINUX_H}")
else()
  if(NOT EXISTS /sys/kernel/btf/vmlinux)
    message(FATAL_ERROR "cordon: /sys/kernel/btf/vmlinux is missing, so vmlinux.h cannot be "
      "generated. Build on a kernel with CONFIG_DEBUG_INFO_BTF=y, or pass "
      "-DCORDON_VMLINUX_H=/path/to/vmlinux.h")
  endif()
  add_custom_command(OUTPUT ${CORDON_VMLINUX_H_OUT}
    COMMAND ${CORDON_BPFTOOL} btf dump file /sys/kernel/btf/vmlinux format c > ${CORDON_VMLINUX_H_OUT}.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${CORDON_VMLINUX_H_OUT}.tmp ${CORDON_VMLINUX_H_OUT}
    COMMENT "Generating vmlinux.h from /sys/kernel/btf/vmlinux"
    VERBATIM)
endif()
add_custom_target(cordon_vmlinux_h DEPENDS ${CORDON_VMLINUX_H_OUT})

# Compiles bpf/<src>.bpf.c to <out>; editing it or any header it includes rebuilds it.
function(cordon_bpf_compile src out)
  add_custom_command(OUTPUT ${out}
    COMMAND ${CORDON_BPF_CLANG} -target bpf -mcpu=v3 -g -O2 -Wall -Werror
            -D__TARGET_ARCH_${CORDON_BPF_ARCH}
            -I${CORDON_VMLINUX_DIR} -I${PROJECT_SOURCE_DIR}/include -I${CMAKE_CURRENT_SOURCE_DIR}
            -MD -MF ${out}.d -c ${CMAKE_CURRENT_SOURCE_DIR}/${src}.bpf.c -o ${out}
    # -mcpu=v3: 32-bit atomics (agent flags, scratch nesting); every kernel with BTF has v3.
    # Drop DWARF but keep .BTF/.BTF.ext, which CO-RE needs; this keeps skeletons small.
    COMMAND ${CORDON_LLVM_STRIP} -g ${out}
    DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/${src}.bpf.c ${CORDON_VMLINUX_H_OUT}
    DEPFILE ${out}.d
    COMMENT "BPF ${src}.bpf.c"
    VERBATIM)
endfunction()

# cordon_bpf_skeleton(<name> [SOURCES <src>...]): see the top of this file.
function(cordon_bpf_skeleton name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "SOURCES")
  set(obj ${CORDON_BPF_OUT}/${name}.bpf.o)
  set(skel ${CORDON_BPF_OUT}/${name}.skel.h)
  if(arg_SOURCES)
    # One object from several files: libbpf's static linker resolves each file's references to
    # the maps, globals and functions another file defines (maps.bpf.h explains the rules).
    set(units)
    foreach(src IN LISTS arg_SOURCES)
      set(unit ${CORDON_BPF_OUT}/units/${src}.bpf.o)
      cordon_bpf_compile(${src} ${unit})
      list(APPEND units ${unit})
    endforeach()
    add_custom_command(OUTPUT ${obj}
      COMMAND ${CORDON_BPFTOOL} gen object ${obj} ${units}
      DEPENDS ${units}
      COMMENT "BPF link ${name}.bpf.o"
      VERBATIM)
  else()
    cordon_bpf_compile(${name} ${obj})
  endif()
  add_custom_command(OUTPUT ${skel}
    COMMAND ${CORDON_BPFTOOL} gen skeleton ${obj} name ${name}_bpf > ${skel}.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${skel}.tmp ${skel}
    DEPENDS ${obj}
    COMMENT "Skeleton ${name}.skel.h"
    VERBATIM)
  add_custom_target(cordon_bpf_${name}_gen DEPENDS ${skel})
  add_library(cordon_bpf_${name} INTERFACE)
  add_dependencies(cordon_bpf_${name} cordon_bpf_${name}_gen)
  target_include_directories(cordon_bpf_${name} SYSTEM INTERFACE ${CORDON_BPF_OUT})
  target_link_libraries(cordon_bpf_${name} INTERFACE PkgConfig::LIBBPF)
  add_library(cordon::bpf_${name} ALIAS cordon_bpf_${name})
endfunction()
