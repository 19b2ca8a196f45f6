# ctest script (label nvcc): compiles every kernels/*.cu for each target
# architecture with -Xptxas -warn-spills and fails on any warning (a spill
# costs the attention kernel its register-resident accumulators), then reads
# the attention kernel's SASS with cuobjdump and fails unless tensor-core MMA
# instructions (HMMA) are there, and on sm_90a also warpgroup MMA (HGMMA, the
# wgmma kernel, with its V operand transposed: .tnspB).
# Inputs: NVCC, SRC_DIR, OUT_DIR, ARCHS (comma list, e.g. 80,86), and
# CUOBJDUMP for the SASS mode (MODE=sass: only attention.cu, and only where
# the spill check, its fixture in the same ctest run, left no cubin).
cmake_minimum_required(VERSION 3.20)  # policies NEW: quoted "sass" is never a variable
file(MAKE_DIRECTORY ${OUT_DIR})
if(MODE STREQUAL "sass")
  set(sources ${SRC_DIR}/attention.cu)
else()
  file(GLOB sources ${SRC_DIR}/*.cu)
endif()
string(REPLACE "," ";" ARCHS "${ARCHS}")
set(failed "")
foreach(arch ${ARCHS})
  foreach(src ${sources})
    get_filename_component(name ${src} NAME_WE)
    set(cubin ${OUT_DIR}/${name}_sm${arch}.cubin)
    if(MODE STREQUAL "sass" AND EXISTS ${cubin})
      message("${name} sm_${arch}: the spill check's cubin")
      continue()
    endif()
    file(REMOVE ${cubin})   # never a stale one left by a failed compile
    execute_process(
      COMMAND ${NVCC} -std=c++17 -O3 -arch=sm_${arch} -cubin -I${SRC_DIR}
              -Xptxas -warn-spills -Xptxas -warn-lmem-usage -o ${cubin} ${src}
      RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
    if(NOT rc EQUAL 0)
      list(APPEND failed "${name} sm_${arch}: nvcc failed")
      message("${name} sm_${arch}: nvcc failed:\n${out}")
    elseif(out MATCHES "[Ww]arning")
      list(APPEND failed "${name} sm_${arch}: warnings")
      message("${name} sm_${arch}: warnings:\n${out}")
    else()
      message("${name} sm_${arch}: clean")
    endif()
  endforeach()
  set(attn ${OUT_DIR}/attention_sm${arch}.cubin)
  if(MODE STREQUAL "sass" AND EXISTS ${attn})
    execute_process(COMMAND ${CUOBJDUMP} -sass ${attn} RESULT_VARIABLE rc OUTPUT_VARIABLE sass_text
                    ERROR_VARIABLE err)
    string(REGEX MATCHALL "HMMA[.A-Z0-9]*" hmma "${sass_text}")
    list(LENGTH hmma n)
    if(NOT rc EQUAL 0 OR n EQUAL 0)
      list(APPEND failed "attention sm_${arch}: no HMMA instruction in the SASS")
    else()
      list(GET hmma 0 first)
      message("attention sm_${arch}: ${n} HMMA instructions (e.g. ${first})")
    endif()
    if(arch STREQUAL "90a")
      string(REGEX MATCHALL "HGMMA[.A-Za-z0-9]*" hgmma "${sass_text}")
      string(REGEX MATCHALL "HGMMA[^;\n]*tnspB" hgmma_t "${sass_text}")
      list(LENGTH hgmma ng)
      list(LENGTH hgmma_t nt)
      if(ng EQUAL 0 OR nt EQUAL 0)
        list(APPEND failed "attention sm_90a: no warpgroup MMA (HGMMA, and HGMMA .tnspB for P V) in the SASS")
      else()
        list(GET hgmma 0 first)
        message("attention sm_90a: ${ng} HGMMA instructions (e.g. ${first}), ${nt} with .tnspB")
      endif()
    endif()
  endif()
endforeach()
if(failed)
  string(REPLACE ";" "\n  " failed "${failed}")
  message(FATAL_ERROR "nvcc kernel checks failed:\n  ${failed}")
endif()
