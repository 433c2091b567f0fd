# cmake/KinferCuda.cmake — finds a CUDA toolkit and enables the CUDA backend.
# Included (optionally) by the top-level CMakeLists.txt. Sets
# KINFER_CUDA_ENABLED and, when ON, makes CUDA::cudart, CUDA::cublas and
# CUDA::cublasLt available. Linking needs no GPU and no driver: cudart loads
# libcuda at run time, and the tests skip loudly when it finds no device.
#
# KINFER_CUDA = AUTO (enable when a toolkit is found), ON (fail without
# one), OFF. Toolkit search order: -DCUDAToolkit_ROOT / $CUDAToolkit_ROOT,
# -DCMAKE_CUDA_COMPILER, $KINFER_CUDA_ROOT, nvcc on PATH, /usr/local/cuda,
# then the root that scripts/setup-cuda.sh recorded in
# ${XDG_CACHE_HOME:-~/.cache}/kinfer/cuda-root.

set(KINFER_CUDA_ENABLED OFF)
string(TOUPPER "${KINFER_CUDA}" _kinfer_cuda_mode)
if(NOT _kinfer_cuda_mode MATCHES "^(AUTO|ON|OFF|TRUE|FALSE|YES|NO|1|0)$")
  message(FATAL_ERROR "KINFER_CUDA must be AUTO, ON or OFF (got '${KINFER_CUDA}')")
endif()
if(_kinfer_cuda_mode MATCHES "^(OFF|FALSE|NO|0)$")
  message(STATUS "kinfer: CUDA backend OFF (KINFER_CUDA=${KINFER_CUDA})")
  return()
endif()
set(_kinfer_cuda_required OFF)
if(NOT _kinfer_cuda_mode STREQUAL "AUTO")
  set(_kinfer_cuda_required ON)
endif()

# --- locate nvcc --------------------------------------------------------------
set(_kinfer_nvcc "")
set(_kinfer_cuda_why "")
if(NOT CUDAToolkit_ROOT AND DEFINED ENV{CUDAToolkit_ROOT})
  set(CUDAToolkit_ROOT "$ENV{CUDAToolkit_ROOT}")
endif()
if(CMAKE_CUDA_COMPILER)
  set(_kinfer_nvcc "${CMAKE_CUDA_COMPILER}")
elseif(CUDAToolkit_ROOT)
  if(EXISTS "${CUDAToolkit_ROOT}/bin/nvcc")
    set(_kinfer_nvcc "${CUDAToolkit_ROOT}/bin/nvcc")
  else()
    set(_kinfer_cuda_why "CUDAToolkit_ROOT=${CUDAToolkit_ROOT} has no bin/nvcc")
  endif()
else()
  set(_kinfer_cache_base "$ENV{XDG_CACHE_HOME}")
  if(NOT _kinfer_cache_base)
    set(_kinfer_cache_base "$ENV{HOME}/.cache")
  endif()
  set(_kinfer_hints "")
  if(DEFINED ENV{KINFER_CUDA_ROOT})
    list(APPEND _kinfer_hints "$ENV{KINFER_CUDA_ROOT}/bin")
  endif()
  if(EXISTS "${_kinfer_cache_base}/kinfer/cuda-root")
    file(STRINGS "${_kinfer_cache_base}/kinfer/cuda-root" _kinfer_recorded LIMIT_COUNT 1)
    set(KINFER_CUDA_RECORDED_ROOT "${_kinfer_recorded}")
  endif()
  # PATH first, then the conventional install, then the cached wheels.
  find_program(KINFER_NVCC nvcc HINTS ${_kinfer_hints}
               PATHS /usr/local/cuda/bin ${KINFER_CUDA_RECORDED_ROOT}/bin)
  if(KINFER_NVCC)
    set(_kinfer_nvcc "${KINFER_NVCC}")
  else()
    set(_kinfer_cuda_why "no nvcc on PATH, in /usr/local/cuda/bin or in the root recorded by \
scripts/setup-cuda.sh (${_kinfer_cache_base}/kinfer/cuda-root)")
  endif()
endif()

if(NOT _kinfer_nvcc)
  if(_kinfer_cuda_required)
    message(FATAL_ERROR "KINFER_CUDA=ON but no CUDA toolkit: ${_kinfer_cuda_why}. "
                        "Run scripts/setup-cuda.sh (installs CUDA 13.0 wheels) or pass "
                        "-DCUDAToolkit_ROOT=/path/to/cuda")
  endif()
  message(STATUS "kinfer: CUDA backend OFF (AUTO: ${_kinfer_cuda_why})")
  return()
endif()

get_filename_component(_kinfer_nvcc_real "${_kinfer_nvcc}" REALPATH)
get_filename_component(_kinfer_cuda_bin "${_kinfer_nvcc_real}" DIRECTORY)
get_filename_component(_kinfer_cuda_root "${_kinfer_cuda_bin}" DIRECTORY)
if(NOT CUDAToolkit_ROOT)
  set(CUDAToolkit_ROOT "${_kinfer_cuda_root}")
endif()

# --- the CUDA language ---------------------------------------------------------
# check_language probes in a sub-build that honours $CUDACXX; a stale
# NOTFOUND from an earlier configure would make it skip the probe.
if(NOT CMAKE_CUDA_COMPILER)
  unset(CMAKE_CUDA_COMPILER CACHE)
  set(ENV{CUDACXX} "${_kinfer_nvcc}")
endif()
# sm_80 (A100) and sm_90 (H100/H200) machine code, plus compute_90 PTX that
# newer GPUs JIT. Set before enable_language so CMake does not probe a GPU.
if(NOT CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES "80-real;90-real;90-virtual")
endif()
# One CUDA runtime in the process: the shared libcudart that CUDA::cudart
# names, not also nvcc's default static one.
set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
include(CheckLanguage)
check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER)
  if(_kinfer_cuda_required)
    message(FATAL_ERROR "KINFER_CUDA=ON but ${_kinfer_nvcc} cannot compile a CUDA test program "
                        "(see CMakeFiles/CMakeError.log; a toolkit from scripts/setup-cuda.sh "
                        "needs its lib64 link and a host g++)")
  endif()
  message(STATUS "kinfer: CUDA backend OFF (AUTO: ${_kinfer_nvcc} failed the compiler check)")
  return()
endif()
enable_language(CUDA)
find_package(CUDAToolkit)
if(NOT CUDAToolkit_FOUND OR NOT TARGET CUDA::cudart OR NOT TARGET CUDA::cublas
   OR NOT TARGET CUDA::cublasLt)
  if(_kinfer_cuda_required)
    message(FATAL_ERROR "KINFER_CUDA=ON: nvcc works but FindCUDAToolkit did not find cudart, "
                        "cublas and cublasLt under ${CUDAToolkit_ROOT} (unversioned .so links "
                        "missing? rerun scripts/setup-cuda.sh)")
  endif()
  message(STATUS "kinfer: CUDA backend OFF (AUTO: cudart/cublas/cublasLt not found)")
  return()
endif()

# --- flags ---------------------------------------------------------------------
# The top-level add_compile_options(-Wall -Wstrict-prototypes ...) apply to
# every language, and nvcc rejects or misreads gcc flags. Rewrite the
# directory's options so C keeps them verbatim and CUDA passes the ones that
# make sense for C++ host code through -Xcompiler. Sanitizer flags stay C
# only: .cu host stubs are not instrumented (libasan still links through C).
get_directory_property(_kinfer_opts COMPILE_OPTIONS)
set(_kinfer_new_opts "")
foreach(opt IN LISTS _kinfer_opts)
  if(opt MATCHES "^\\$<")
    list(APPEND _kinfer_new_opts "${opt}") # already a generator expression
    continue()
  endif()
  list(APPEND _kinfer_new_opts "$<$<COMPILE_LANGUAGE:C>:${opt}>")
  if(opt STREQUAL "-Werror")
    list(APPEND _kinfer_new_opts "$<$<COMPILE_LANGUAGE:CUDA>:-Werror=all-warnings>"
         "$<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Werror>")
  elseif(opt MATCHES "^-W" AND NOT opt STREQUAL "-Wstrict-prototypes")
    list(APPEND _kinfer_new_opts "$<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=${opt}>")
  elseif(opt STREQUAL "-fno-omit-frame-pointer")
    list(APPEND _kinfer_new_opts "$<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=${opt}>")
  endif()
endforeach()
set_directory_properties(PROPERTIES COMPILE_OPTIONS "${_kinfer_new_opts}")
# Line info in device code for compute-sanitizer reports; costs no speed.
string(APPEND CMAKE_CUDA_FLAGS " -lineinfo")

# The toolkit's lib dir is an implicit link directory of nvcc (lib64), and
# CMake puts no RPATH for those; a wheel toolkit is not on the loader path,
# so binaries would not find libcudart.so.13. Keep it in the build RPATH.
list(APPEND CMAKE_BUILD_RPATH "${CUDAToolkit_LIBRARY_DIR}")

set(KINFER_CUDA_ENABLED ON)
message(STATUS "kinfer: CUDA backend ON: nvcc ${CMAKE_CUDA_COMPILER_VERSION} at ${CMAKE_CUDA_COMPILER},"
               " toolkit ${CUDAToolkit_LIBRARY_DIR}, architectures ${CMAKE_CUDA_ARCHITECTURES}")
