# C/C++: configure with CMake, build with make, test with ctest.
prepare() { :; }
run() {
  mkdir -p src
  cat > CMakeLists.txt <<'C'
cmake_minimum_required(VERSION 3.13)
project(calc C CXX)
enable_testing()
add_library(calc src/calc.c)
add_executable(calc_test src/calc_test.cpp)
target_link_libraries(calc_test calc)
add_test(NAME calc COMMAND calc_test)
C
  echo 'int add(int a, int b) { return a + b; }' > src/calc.c
  cat > src/calc_test.cpp <<'C'
#include <cstdio>
extern "C" int add(int, int);
int main() { std::printf("c job: %d\n", add(2, 3)); return add(2, 3) == 5 ? 0 : 1; }
C
  cmake -S . -B build -G "Unix Makefiles" -DCMAKE_BUILD_TYPE=Debug
  make -C build -j2
  ctest --test-dir build --output-on-failure
}
