# SPDX-License-Identifier: Apache-2.0
# The policy library's sources, shared by the main build and the clang fuzzing build
# (tests/fuzz), so that the fuzzer always exercises exactly what cordon ships.
set(CORDON_POLICY_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/compiler.cpp
  ${CMAKE_CURRENT_LIST_DIR}/duration.cpp
  ${CMAKE_CURRENT_LIST_DIR}/grant.cpp
  ${CMAKE_CURRENT_LIST_DIR}/learn.cpp
  ${CMAKE_CURRENT_LIST_DIR}/learn_suggest.cpp
  ${CMAKE_CURRENT_LIST_DIR}/lookup.cpp
  ${CMAKE_CURRENT_LIST_DIR}/model.cpp
  ${CMAKE_CURRENT_LIST_DIR}/net.cpp
  ${CMAKE_CURRENT_LIST_DIR}/parser.cpp
  ${CMAKE_CURRENT_LIST_DIR}/pipeline.cpp
  ${CMAKE_CURRENT_LIST_DIR}/render.cpp
  ${CMAKE_CURRENT_LIST_DIR}/trust.cpp)
