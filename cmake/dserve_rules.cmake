# The Bazel rules used in BUILD.bazel, as CMake functions (called from the
# generated cmake/targets.cmake). A target //pkg:name is the CMake target
# pkg__name (slashes → '_'); binaries and tests are written to
# <build>/runfiles/dserve/<pkg>/<name>, the layout Bazel's runfiles tree has,
# so tests that find their data through TEST_SRCDIR or through workspace-
# relative paths ($(rootpath ...) arguments) run unchanged under ctest.

set(DSERVE_RUNFILES "${CMAKE_BINARY_DIR}/runfiles")
set(DSERVE_RUNFILES_MAIN "${DSERVE_RUNFILES}/dserve")
set(DSERVE_GEN "${CMAKE_BINARY_DIR}/gen")
file(MAKE_DIRECTORY "${DSERVE_GEN}" "${DSERVE_RUNFILES_MAIN}")

function(_dserve_sources out pkg)
  set(files)
  foreach(f IN LISTS ARGN)
    list(APPEND files "${CMAKE_SOURCE_DIR}/${pkg}/${f}")
  endforeach()
  set(${out} ${files} PARENT_SCOPE)
endfunction()

function(_dserve_common tgt scope)
  target_include_directories(${tgt} ${scope} "${CMAKE_SOURCE_DIR}" "${DSERVE_GEN}")
endfunction()

# dserve_cc_library(<target> PKG <pkg> SRCS .. HDRS .. DEPS .. DEFINES ..)
function(dserve_cc_library tgt)
  cmake_parse_arguments(A "" "PKG" "SRCS;HDRS;DEPS;DEFINES" ${ARGN})
  if(A_SRCS)
    _dserve_sources(srcs ${A_PKG} ${A_SRCS})
    add_library(${tgt} STATIC ${srcs})
    _dserve_common(${tgt} PUBLIC)
    target_link_libraries(${tgt} PUBLIC ${A_DEPS})
    if(A_DEFINES)
      target_compile_definitions(${tgt} PUBLIC ${A_DEFINES})
    endif()
  else()
    add_library(${tgt} INTERFACE)
    _dserve_common(${tgt} INTERFACE)
    target_link_libraries(${tgt} INTERFACE ${A_DEPS})
    if(A_DEFINES)
      target_compile_definitions(${tgt} INTERFACE ${A_DEFINES})
    endif()
  endif()
endfunction()

function(_dserve_executable tgt pkg name)
  _dserve_sources(srcs ${pkg} ${ARGN})
  add_executable(${tgt} ${srcs})
  _dserve_common(${tgt} PRIVATE)
  set_target_properties(${tgt} PROPERTIES
      OUTPUT_NAME ${name}
      RUNTIME_OUTPUT_DIRECTORY "${DSERVE_RUNFILES_MAIN}/${pkg}")
endfunction()

# dserve_cc_binary(<target> PKG <pkg> NAME <name> SRCS .. DEPS .. DATA ..)
function(dserve_cc_binary tgt)
  cmake_parse_arguments(A "" "PKG;NAME" "SRCS;DEPS;DATA;SRC_DATA" ${ARGN})
  _dserve_link_sources(${A_SRC_DATA})
  _dserve_executable(${tgt} ${A_PKG} ${A_NAME} ${A_SRCS})
  target_link_libraries(${tgt} PRIVATE ${A_DEPS})
  if(A_DATA)
    add_dependencies(${tgt} ${A_DATA})
  endif()
endfunction()

# Links workspace-relative source files into the runfiles tree.
function(_dserve_link_sources)
  foreach(f IN LISTS ARGN)
    get_filename_component(dir "${DSERVE_RUNFILES_MAIN}/${f}" DIRECTORY)
    file(MAKE_DIRECTORY "${dir}")
    file(CREATE_LINK "${CMAKE_SOURCE_DIR}/${f}" "${DSERVE_RUNFILES_MAIN}/${f}" SYMBOLIC)
  endforeach()
endfunction()

function(_dserve_register_test tgt pkg name timeout labels)
  set(tmp "${CMAKE_BINARY_DIR}/test_tmp/${pkg}/${name}")
  file(MAKE_DIRECTORY "${tmp}")
  add_test(NAME ${pkg}:${name} COMMAND ${ARGN}
           WORKING_DIRECTORY "${DSERVE_RUNFILES_MAIN}")
  set_tests_properties(${pkg}:${name} PROPERTIES
      TIMEOUT ${timeout} LABELS "${labels}"
      ENVIRONMENT "TEST_SRCDIR=${DSERVE_RUNFILES};TEST_TMPDIR=${tmp};OMP_NUM_THREADS=1")
endfunction()

# dserve_cc_test(<target> PKG NAME SRCS DEPS DATA TIMEOUT LABELS ARGS)
function(dserve_cc_test tgt)
  cmake_parse_arguments(A "" "PKG;NAME;TIMEOUT" "SRCS;DEPS;DATA;SRC_DATA;LABELS;ARGS" ${ARGN})
  _dserve_link_sources(${A_SRC_DATA})
  _dserve_executable(${tgt} ${A_PKG} ${A_NAME} ${A_SRCS})
  target_link_libraries(${tgt} PRIVATE ${A_DEPS})
  if(A_DATA)
    add_dependencies(${tgt} ${A_DATA})
  endif()
  _dserve_register_test(${tgt} ${A_PKG} ${A_NAME} ${A_TIMEOUT} "${A_LABELS}"
      $<TARGET_FILE:${tgt}> ${A_ARGS})
endfunction()

# dserve_sh_test(<target> PKG NAME SCRIPT DATA TIMEOUT LABELS ARGS)
function(dserve_sh_test tgt)
  cmake_parse_arguments(A "" "PKG;NAME;SCRIPT;TIMEOUT" "DATA;SRC_DATA;LABELS;ARGS" ${ARGN})
  _dserve_link_sources(${A_SRC_DATA})
  add_custom_target(${tgt} ALL)
  if(A_DATA)
    add_dependencies(${tgt} ${A_DATA})
  endif()
  _dserve_register_test(${tgt} ${A_PKG} ${A_NAME} ${A_TIMEOUT} "${A_LABELS}"
      bash "${CMAKE_SOURCE_DIR}/${A_PKG}/${A_SCRIPT}" ${A_ARGS})
endfunction()

# dserve_py_test(<target> PKG NAME MAIN DATA TIMEOUT LABELS ARGS)
function(dserve_py_test tgt)
  cmake_parse_arguments(A "" "PKG;NAME;MAIN;TIMEOUT" "DATA;SRC_DATA;LABELS;ARGS" ${ARGN})
  _dserve_link_sources(${A_SRC_DATA})
  add_custom_target(${tgt} ALL)
  if(A_DATA)
    add_dependencies(${tgt} ${A_DATA})
  endif()
  find_package(Python3 COMPONENTS Interpreter REQUIRED)
  _dserve_register_test(${tgt} ${A_PKG} ${A_NAME} ${A_TIMEOUT} "${A_LABELS}"
      ${Python3_EXECUTABLE} "${CMAKE_SOURCE_DIR}/${A_PKG}/${A_MAIN}" ${A_ARGS})
endfunction()

# dserve_filegroup(<target> PKG FILES .. DIRS .. GLOBS ..): source files
# linked into runfiles. DIRS (Bazel's glob(["dir/**"])) link the folder
# itself, so files made after configuring (trained weights) are seen too.
function(dserve_filegroup tgt)
  cmake_parse_arguments(A "" "PKG" "FILES;DIRS;GLOBS" ${ARGN})
  add_custom_target(${tgt})
  set(files ${A_FILES})
  foreach(g IN LISTS A_GLOBS)
    file(GLOB matched RELATIVE "${CMAKE_SOURCE_DIR}/${A_PKG}" "${CMAKE_SOURCE_DIR}/${A_PKG}/${g}")
    list(APPEND files ${matched})
  endforeach()
  foreach(f IN LISTS files A_DIRS)
    _dserve_link_sources("${A_PKG}/${f}")
  endforeach()
endfunction()

# dserve_cc_proto(<target> [ROOT <import root>] PKG <pkg> PROTO <file> DEPS ..)
# Messages (<base>.pb.{h,cc}) of one .proto; include as "<pkg>/<base>.pb.h".
function(dserve_cc_proto tgt)
  cmake_parse_arguments(A "" "ROOT;PKG;PROTO" "DEPS" ${ARGN})
  if(NOT A_ROOT)
    set(A_ROOT "${CMAKE_SOURCE_DIR}")
  endif()
  get_filename_component(base ${A_PROTO} NAME_WE)
  set(out "${DSERVE_GEN}/${A_PKG}/${base}")
  add_custom_command(
      OUTPUT "${out}.pb.h" "${out}.pb.cc"
      COMMAND ${DSERVE_PROTOC} -I "${A_ROOT}" -I "${CMAKE_SOURCE_DIR}"
              --cpp_out "${DSERVE_GEN}" "${A_ROOT}/${A_PKG}/${A_PROTO}"
      DEPENDS "${A_ROOT}/${A_PKG}/${A_PROTO}" ${DSERVE_PROTOC}
      COMMENT "protoc ${A_PKG}/${A_PROTO}")
  add_library(${tgt} STATIC "${out}.pb.cc")
  _dserve_common(${tgt} PUBLIC)
  target_link_libraries(${tgt} PUBLIC ${A_DEPS} dserve_tp_protobuf)
endfunction()

# dserve_cc_grpc(<target> [ROOT] PKG PROTO DEPS): <base>.grpc.pb.{h,cc}.
function(dserve_cc_grpc tgt)
  cmake_parse_arguments(A "" "ROOT;PKG;PROTO" "DEPS" ${ARGN})
  if(NOT A_ROOT)
    set(A_ROOT "${CMAKE_SOURCE_DIR}")
  endif()
  get_filename_component(base ${A_PROTO} NAME_WE)
  set(out "${DSERVE_GEN}/${A_PKG}/${base}")
  add_custom_command(
      OUTPUT "${out}.grpc.pb.h" "${out}.grpc.pb.cc"
      COMMAND ${DSERVE_PROTOC} -I "${A_ROOT}" -I "${CMAKE_SOURCE_DIR}"
              --plugin=protoc-gen-grpc=${DSERVE_GRPC_CPP_PLUGIN}
              --grpc_out "${DSERVE_GEN}" "${A_ROOT}/${A_PKG}/${A_PROTO}"
      DEPENDS "${A_ROOT}/${A_PKG}/${A_PROTO}" ${DSERVE_PROTOC}
      COMMENT "grpc_cpp_plugin ${A_PKG}/${A_PROTO}")
  add_library(${tgt} STATIC "${out}.grpc.pb.cc")
  _dserve_common(${tgt} PUBLIC)
  target_link_libraries(${tgt} PUBLIC ${A_DEPS} dserve_tp_grpc)
endfunction()

# dserve_genrule(<target> PKG <pkg> SRC <file> OUT <file> CMD <shell>)
# Bazel's genrule with one source and one output: CMD (with $< and $@ already
# replaced by the generator) writes ${DSERVE_GEN}/<pkg>/<OUT>.
function(dserve_genrule tgt)
  # PARSE_ARGV keeps the semicolons inside CMD (plain ARGN would split it).
  cmake_parse_arguments(PARSE_ARGV 1 A "" "PKG;SRC;OUT;CMD" "")
  set(out "${DSERVE_GEN}/${A_PKG}/${A_OUT}")
  file(MAKE_DIRECTORY "${DSERVE_GEN}/${A_PKG}")
  add_custom_command(
      OUTPUT "${out}"
      COMMAND bash -c "${A_CMD}"
      DEPENDS "${CMAKE_SOURCE_DIR}/${A_PKG}/${A_SRC}"
      VERBATIM)
  add_custom_target(${tgt} DEPENDS "${out}")
endfunction()

# dserve_cc_shared(<target> PKG <pkg> NAME <libfoo.so> SRCS .. DEPS ..)
# Bazel's cc_binary(linkshared = 1): a .so for dlopen(), placed at
# <runfiles>/dserve/<pkg>/<NAME> like Bazel's runfiles tree.
function(dserve_cc_shared tgt)
  cmake_parse_arguments(A "" "PKG;NAME" "SRCS;DEPS" ${ARGN})
  _dserve_sources(srcs ${A_PKG} ${A_SRCS})
  add_library(${tgt} SHARED ${srcs})
  _dserve_common(${tgt} PRIVATE)
  target_link_libraries(${tgt} PRIVATE ${A_DEPS})
  set_target_properties(${tgt} PROPERTIES
      PREFIX "" SUFFIX "" OUTPUT_NAME ${A_NAME}
      LIBRARY_OUTPUT_DIRECTORY "${DSERVE_RUNFILES_MAIN}/${A_PKG}")
endfunction()
