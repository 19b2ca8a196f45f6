# EmbedcSim.cmake: build kernels and CUDA host code against the simulator.
#
# include(${PROJECT_SOURCE_DIR}/tests/sim/cmake/EmbedcSim.cmake) from any
# directory, then:
#
#   embedc_sim_kernels(<target> [VARIANT plain|asan|tsan] SOURCES <kernels/*.cu ...>)
#     A static library of the given .cu files compiled by the host C++
#     compiler as C++17 with -DEMBEDC_SIM (kernels/arch.h then pulls in the
#     simulator), linked PUBLIC to the matching runtime library, so a host
#     target that links <target> gets the kernels and the fake CUDA runtime,
#     cuBLAS and NCCL. Each .cu file is compiled through a generated .cpp that
#     #includes it, so the same file can also belong to an nvcc target.
#
#   Runtime libraries (the real headers' symbols: cudart, cuBLAS, NCCL subset):
#     embedc_sim_runtime        plain (ASan-instrumented when EMBEDC_SANITIZE)
#     embedc_sim_runtime_asan   with ASan fiber annotations; link with -fsanitize=address
#     embedc_sim_runtime_tsan   with TSan fiber API; link with -fsanitize=thread
#                               (only where EMBEDC_SIM_HAVE_TSAN and not EMBEDC_SANITIZE)
#   Host C/C++ code using cudaMalloc/cuBLAS/NCCL links embedc_sim_runtime
#   instead of CUDA::cudart, CUDA::cublas and nccl.
include_guard(GLOBAL)

# Everything the functions below read is a CACHE INTERNAL variable: the file
# is include_guard(GLOBAL)ed, so a second directory that includes it (tests/cuda
# after tests/sim) runs none of this and must still see the same values.
get_filename_component(_embsim_dir ${CMAKE_CURRENT_LIST_DIR}/.. ABSOLUTE)
set(EMBEDC_SIM_DIR ${_embsim_dir} CACHE INTERNAL "tests/sim")
get_filename_component(_embsim_dir ${_embsim_dir}/../../kernels ABSOLUTE)
set(EMBEDC_SIM_KERNELS_DIR ${_embsim_dir} CACHE INTERNAL "kernels/ (arch.h)")

# The simulator compiles against the real CUDA headers (types, error codes,
# signatures) but never links a CUDA library.
if(CUDAToolkit_INCLUDE_DIRS)
  set(_embsim_cuda_hint ${CUDAToolkit_INCLUDE_DIRS})
endif()
find_path(EMBEDC_SIM_CUDA_INCLUDE cuda_runtime_api.h
  HINTS ${_embsim_cuda_hint} $ENV{CUDA_HOME}/include $ENV{CUDA_PATH}/include
  PATHS /usr/local/cuda/include /opt/cuda/include /usr/include)
find_path(EMBEDC_SIM_NCCL_INCLUDE nccl.h
  HINTS ${EMBEDC_SIM_CUDA_INCLUDE} $ENV{NCCL_HOME}/include
  PATHS /usr/local/cuda/include /usr/include)

if(EMBEDC_SIM_CUDA_INCLUDE AND EMBEDC_SIM_NCCL_INCLUDE)
  set(EMBEDC_SIM_AVAILABLE ON CACHE INTERNAL "CUDA headers for the simulator found")
else()
  set(EMBEDC_SIM_AVAILABLE OFF CACHE INTERNAL "CUDA headers for the simulator found")
endif()

set(EMBEDC_SIM_ASAN_FLAGS -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
    CACHE INTERNAL "compile flags of the asan variant")
set(EMBEDC_SIM_TSAN_FLAGS -fsanitize=thread -fno-omit-frame-pointer
    CACHE INTERNAL "compile flags of the tsan variant")

# ThreadSanitizer needs compiler and runtime support (and cannot be combined
# with the global ASan flags): the tsan variant exists only where both hold.
if(NOT DEFINED EMBEDC_SIM_HAVE_TSAN)
  include(CheckCXXSourceCompiles)
  set(CMAKE_REQUIRED_FLAGS -fsanitize=thread)
  set(CMAKE_REQUIRED_LINK_OPTIONS -fsanitize=thread)
  check_cxx_source_compiles("int main() { return 0; }" _embsim_tsan_links)
  unset(CMAKE_REQUIRED_FLAGS)
  unset(CMAKE_REQUIRED_LINK_OPTIONS)
  set(EMBEDC_SIM_HAVE_TSAN ${_embsim_tsan_links} CACHE INTERNAL "the compiler links -fsanitize=thread")
endif()

# Compile definitions and flags of one variant, for code that includes the
# simulator headers.
function(_embsim_variant_setup target scope variant)
  target_include_directories(${target} ${scope} ${EMBEDC_SIM_DIR}/include ${EMBEDC_SIM_KERNELS_DIR}
                             ${EMBEDC_SIM_CUDA_INCLUDE} ${EMBEDC_SIM_NCCL_INCLUDE})
  target_compile_definitions(${target} ${scope} EMBEDC_SIM)
  if(variant STREQUAL "asan")
    target_compile_options(${target} ${scope} ${EMBEDC_SIM_ASAN_FLAGS})
    target_link_options(${target} ${scope} -fsanitize=address,undefined)
  elseif(variant STREQUAL "tsan")
    target_compile_options(${target} ${scope} ${EMBEDC_SIM_TSAN_FLAGS})
    target_link_options(${target} ${scope} -fsanitize=thread)
  endif()
endfunction()

function(_embsim_runtime_name out variant)
  if(variant STREQUAL "asan")
    set(${out} embedc_sim_runtime_asan PARENT_SCOPE)
  elseif(variant STREQUAL "tsan")
    set(${out} embedc_sim_runtime_tsan PARENT_SCOPE)
  else()
    set(${out} embedc_sim_runtime PARENT_SCOPE)
  endif()
endfunction()

function(embedc_sim_kernels target)
  cmake_parse_arguments(ARG "" "VARIANT" "SOURCES" ${ARGN})
  if(NOT ARG_VARIANT)
    set(ARG_VARIANT plain)
  endif()
  set(ARG_SOURCES ${ARG_SOURCES} ${ARG_UNPARSED_ARGUMENTS})
  set(wrappers "")
  foreach(src ${ARG_SOURCES})
    get_filename_component(abs ${src} ABSOLUTE)
    get_filename_component(name ${src} NAME)
    set(wrapper ${CMAKE_CURRENT_BINARY_DIR}/embsim_${target}/${name}.cpp)
    file(CONFIGURE OUTPUT ${wrapper} CONTENT "/* generated: ${name} compiled for the CUDA simulator */\n#include \"${abs}\"\n")
    list(APPEND wrappers ${wrapper})
  endforeach()
  add_library(${target} STATIC ${wrappers})
  set_target_properties(${target} PROPERTIES CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON)
  _embsim_variant_setup(${target} PUBLIC ${ARG_VARIANT})
  _embsim_runtime_name(rt ${ARG_VARIANT})
  target_link_libraries(${target} PUBLIC ${rt})
endfunction()

function(_embsim_add_runtime name variant)
  add_library(${name} STATIC
    ${EMBEDC_SIM_DIR}/src/sched.cpp
    ${EMBEDC_SIM_DIR}/src/runtime.cpp
    ${EMBEDC_SIM_DIR}/src/cublas.cpp
    ${EMBEDC_SIM_DIR}/src/nccl.cpp)
  set_target_properties(${name} PROPERTIES CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON)
  target_include_directories(${name} PUBLIC ${EMBEDC_SIM_DIR}/include ${EMBEDC_SIM_CUDA_INCLUDE}
                             ${EMBEDC_SIM_NCCL_INCLUDE})
  target_compile_options(${name} PRIVATE -Wall -Wextra -Wshadow)
  find_package(Threads REQUIRED)
  target_link_libraries(${name} PUBLIC Threads::Threads m)
  if(variant STREQUAL "asan")
    # Instrumented, so device buffers' red zones are poisoned for ASan.
    target_compile_definitions(${name} PRIVATE EMBSIM_ASAN)
    target_compile_options(${name} PRIVATE ${EMBEDC_SIM_ASAN_FLAGS})
    target_link_options(${name} INTERFACE -fsanitize=address,undefined)
  elseif(variant STREQUAL "tsan")
    # Not instrumented: the scheduler's own bookkeeping is not the code under
    # test; it tells TSan about fibers and rendezvous through its API.
    target_compile_definitions(${name} PRIVATE EMBSIM_TSAN)
    target_link_options(${name} INTERFACE -fsanitize=thread)
  endif()
endfunction()

if(EMBEDC_SIM_AVAILABLE AND NOT TARGET embedc_sim_runtime)
  if(EMBEDC_SANITIZE)
    _embsim_add_runtime(embedc_sim_runtime asan)
  else()
    _embsim_add_runtime(embedc_sim_runtime plain)
  endif()
  _embsim_add_runtime(embedc_sim_runtime_asan asan)
  if(EMBEDC_SIM_HAVE_TSAN AND NOT EMBEDC_SANITIZE)
    _embsim_add_runtime(embedc_sim_runtime_tsan tsan)
  endif()
endif()
