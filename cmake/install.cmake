# Installing lathe: `cmake --install build/release [--prefix P]` puts the `lathe` command, the
# headers, the libraries (static by default; BUILD_SHARED_LIBS=ON for shared ones with a
# SONAME), the CMake package (find_package(lathe 0.1 CONFIG) with components onnx, serve, mpi),
# pkg-config files (lathe, lathe-onnx, lathe-serve, lathe-mpi), the docs and a man page under the
# prefix; `cpack -G DEB` (in the build folder) makes lathe_<version>_amd64.deb. docs/library.md.
include(CMakePackageConfigHelpers)

set(LATHE_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/lathe)

install(TARGETS lathe_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/lathe DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# One export set per library, so that a program asking for the core imports nothing of the
# components' dependencies.
set(LATHE_MPI_COMPONENT "")
function(lathe_install_library target export_name)
  install(TARGETS ${target} EXPORT ${export_name}
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  install(EXPORT ${export_name} NAMESPACE lathe:: DESTINATION ${LATHE_INSTALL_CMAKEDIR})
endfunction()
set_target_properties(lathe PROPERTIES EXPORT_NAME lathe)
set_target_properties(lathe_onnx PROPERTIES EXPORT_NAME onnx)
set_target_properties(lathe_serve PROPERTIES EXPORT_NAME serve)
set_target_properties(lathe_board PROPERTIES EXPORT_NAME board)
lathe_install_library(lathe lathe-targets)
lathe_install_library(lathe_onnx lathe-onnx-targets)
lathe_install_library(lathe_serve lathe-serve-targets)
lathe_install_library(lathe_board lathe-board-targets)
if(LATHE_MPI)
  set_target_properties(lathe_mpi PROPERTIES EXPORT_NAME mpi)
  lathe_install_library(lathe_mpi lathe-mpi-targets)
  set(LATHE_MPI_COMPONENT mpi)
endif()

# (@BUILD_SHARED_LIBS@ in the template is empty, so false, for the default static build.)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/lathe-config.cmake.in
  ${PROJECT_BINARY_DIR}/lathe-config.cmake INSTALL_DESTINATION ${LATHE_INSTALL_CMAKEDIR})
# 0.x: a newer minor version may change the API, so only the same minor version matches.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/lathe-config-version.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/lathe-config.cmake ${PROJECT_BINARY_DIR}/lathe-config-version.cmake
  DESTINATION ${LATHE_INSTALL_CMAKEDIR})

# pkg-config: Requires.private and Libs.private hold what a static link needs
# (`pkg-config --static --libs lathe`).
set(LATHE_PKGCONFIG_DIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
# The prefix from where the .pc file lies, so an installed tree (a .deb at /usr, a staging
# folder) can move.
file(RELATIVE_PATH LATHE_PC_PREFIX_FROM_PCFILEDIR /prefix/${LATHE_PKGCONFIG_DIR} /prefix)
string(REGEX REPLACE "/$" "" LATHE_PC_PREFIX_FROM_PCFILEDIR "${LATHE_PC_PREFIX_FROM_PCFILEDIR}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/lathe.pc.in ${PROJECT_BINARY_DIR}/pkgconfig/lathe.pc @ONLY)
function(lathe_component_pc component description requires_private libs_private)
  set(LATHE_PC_COMPONENT ${component})
  set(LATHE_PC_DESCRIPTION ${description})
  set(LATHE_PC_REQUIRES_PRIVATE ${requires_private})
  set(LATHE_PC_LIBS_PRIVATE ${libs_private})
  configure_file(${PROJECT_SOURCE_DIR}/cmake/lathe-component.pc.in
    ${PROJECT_BINARY_DIR}/pkgconfig/lathe-${component}.pc @ONLY)
endfunction()
lathe_component_pc(onnx "ONNX export" "fmt protobuf" "-lonnx_proto")
# libmicrohttpd by name, not through its .pc: its Requires.private pulls in gnutls's static
# libraries, which Debian's -dev packages do not ship; it is a shared library here anyway.
lathe_component_pc(serve "HTTP inference server" "fmt libbrotlidec zlib simdjson" "-lmicrohttpd")
set(LATHE_PC_FILES ${PROJECT_BINARY_DIR}/pkgconfig/lathe.pc
  ${PROJECT_BINARY_DIR}/pkgconfig/lathe-onnx.pc ${PROJECT_BINARY_DIR}/pkgconfig/lathe-serve.pc)
if(LATHE_MPI)
  lathe_component_pc(mpi "MPI transport for training across processes" "fmt mpi" "")
  list(APPEND LATHE_PC_FILES ${PROJECT_BINARY_DIR}/pkgconfig/lathe-mpi.pc)
endif()
install(FILES ${LATHE_PC_FILES} DESTINATION ${LATHE_PKGCONFIG_DIR})

# The docs, and a man page made from `lathe --help` by help2man (Debian's help2man).
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR}
  FILES_MATCHING PATTERN "*.md" PATTERN "*.png" PATTERN "*.svg")
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
find_program(LATHE_HELP2MAN help2man)
if(LATHE_HELP2MAN)
  add_custom_command(OUTPUT ${PROJECT_BINARY_DIR}/lathe.1
    COMMAND ${LATHE_HELP2MAN} --no-info --no-discard-stderr --version-string=${PROJECT_VERSION}
            --name "train, evaluate and deploy neural networks" -o ${PROJECT_BINARY_DIR}/lathe.1
            $<TARGET_FILE:lathe_cli>
    DEPENDS lathe_cli VERBATIM)
  add_custom_target(lathe_man ALL DEPENDS ${PROJECT_BINARY_DIR}/lathe.1)
  install(FILES ${PROJECT_BINARY_DIR}/lathe.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
else()
  message(WARNING "help2man not found (Debian's help2man; scripts/setup.sh installs it): no man page")
endif()

# cpack -G DEB: one package with the command, libraries, headers, CMake package and docs. Depends
# comes from the shared libraries the installed binaries link (dpkg-shlibdeps); what building
# against the headers needs besides is Recommended, which apt installs by default.
set(CPACK_PACKAGE_NAME lathe)
set(CPACK_PACKAGE_VENDOR "lathe")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Train, evaluate and deploy neural networks in C++")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "lathe developers <lathe@localhost>")
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS
  "libopenblas-dev, nlohmann-json3-dev, libfmt-dev, zlib1g-dev, libdeflate-dev, libstb-dev, libtomlplusplus-dev, libcpp-httplib-dev, libmicrohttpd-dev, libbrotli-dev, libsimdjson-dev, libonnx-dev, libprotobuf-dev, libopenmpi-dev, pkg-config")
include(CPack)
