# cmake/KinferRdkafka.cmake — which librdkafka kinfer links (PkgConfig::RDKAFKA).
#   -DKINFER_RDKAFKA=system  the one pkg-config finds (Debian 12: 2.0.2), default
#   -DKINFER_RDKAFKA=DIR     an install prefix with DIR/lib/pkgconfig/rdkafka.pc,
#                            e.g. what scripts/setup-librdkafka.sh builds into
#                            ~/.cache/kinfer/librdkafka-<version>
# With a DIR, its headers come before the system ones and the binaries get a
# RUNPATH to DIR/lib (build and install), so build/kinfer runs against it
# without LD_LIBRARY_PATH. Included by the top-level CMakeLists.txt after
# find_package(PkgConfig).

set(KINFER_RDKAFKA "system" CACHE STRING "librdkafka: system, or the install prefix of another one")

# pkg_check_modules caches its answer; a changed KINFER_RDKAFKA must ask again.
if(NOT "${KINFER_RDKAFKA}" STREQUAL "${_KINFER_RDKAFKA_CHECKED}")
  unset(__pkg_config_checked_RDKAFKA CACHE)
  unset(RDKAFKA_FOUND CACHE)
endif()

if(KINFER_RDKAFKA STREQUAL "system")
  pkg_check_modules(RDKAFKA REQUIRED IMPORTED_TARGET rdkafka)
else()
  get_filename_component(_kinfer_rdkafka_dir "${KINFER_RDKAFKA}" ABSOLUTE)
  set(_kinfer_rdkafka_pc "${_kinfer_rdkafka_dir}/lib/pkgconfig/rdkafka.pc")
  if(NOT EXISTS "${_kinfer_rdkafka_pc}")
    message(FATAL_ERROR "KINFER_RDKAFKA=${KINFER_RDKAFKA}: no ${_kinfer_rdkafka_pc} "
                        "(scripts/setup-librdkafka.sh builds one; or use KINFER_RDKAFKA=system)")
  endif()
  # Only for this lookup: DIR's rdkafka.pc first; the packages it requires
  # privately (libssl, libzstd, ...) still come from the default path.
  set(_kinfer_saved_pc_path "$ENV{PKG_CONFIG_PATH}")
  set(ENV{PKG_CONFIG_PATH} "${_kinfer_rdkafka_dir}/lib/pkgconfig:$ENV{PKG_CONFIG_PATH}")
  pkg_check_modules(RDKAFKA REQUIRED IMPORTED_TARGET rdkafka)
  set(ENV{PKG_CONFIG_PATH} "${_kinfer_saved_pc_path}")
  # pkg-config must have answered from DIR, not from another rdkafka.pc.
  get_filename_component(_kinfer_rdkafka_libdir "${RDKAFKA_LIBDIR}" ABSOLUTE)
  if(NOT _kinfer_rdkafka_libdir STREQUAL "${_kinfer_rdkafka_dir}/lib")
    message(FATAL_ERROR "KINFER_RDKAFKA=${KINFER_RDKAFKA}: pkg-config found librdkafka in "
                        "${RDKAFKA_LIBDIR}, not ${_kinfer_rdkafka_dir}/lib")
  endif()
  # The headers must be the library's own version: the system's
  # /usr/include/librdkafka would otherwise be a silent fallback.
  set(_kinfer_rdkafka_h "${_kinfer_rdkafka_dir}/include/librdkafka/rdkafka.h")
  if(NOT EXISTS "${_kinfer_rdkafka_h}")
    message(FATAL_ERROR "KINFER_RDKAFKA=${KINFER_RDKAFKA}: no ${_kinfer_rdkafka_h}")
  endif()
  file(STRINGS "${_kinfer_rdkafka_h}" _kinfer_rdkafka_hv REGEX "^#define RD_KAFKA_VERSION +0x")
  string(REGEX REPLACE ".*0x([0-9a-fA-F][0-9a-fA-F])([0-9a-fA-F][0-9a-fA-F])([0-9a-fA-F][0-9a-fA-F]).*"
                       "\\1;\\2;\\3" _kinfer_rdkafka_hv "${_kinfer_rdkafka_hv}")
  set(_kinfer_rdkafka_hdr_version "")
  foreach(_part IN LISTS _kinfer_rdkafka_hv)
    math(EXPR _part "0x${_part}")
    list(APPEND _kinfer_rdkafka_hdr_version ${_part})
  endforeach()
  list(JOIN _kinfer_rdkafka_hdr_version "." _kinfer_rdkafka_hdr_version)
  if(NOT _kinfer_rdkafka_hdr_version VERSION_EQUAL RDKAFKA_VERSION)
    message(FATAL_ERROR "KINFER_RDKAFKA=${KINFER_RDKAFKA}: rdkafka.h is version "
                        "'${_kinfer_rdkafka_hdr_version}', rdkafka.pc says ${RDKAFKA_VERSION}")
  endif()
  # RUNPATH: CMake puts DIR/lib into the build tree's binaries by itself (the
  # imported target links by absolute path); installed ones need it said.
  list(APPEND CMAKE_INSTALL_RPATH "${_kinfer_rdkafka_dir}/lib")
endif()
set(_KINFER_RDKAFKA_CHECKED "${KINFER_RDKAFKA}" CACHE INTERNAL "KINFER_RDKAFKA of the last check")
message(STATUS "librdkafka ${RDKAFKA_VERSION} (KINFER_RDKAFKA=${KINFER_RDKAFKA}, ${RDKAFKA_LINK_LIBRARIES})")
