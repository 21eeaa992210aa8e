# Applied to every target of the project through pwresetd_target_defaults().
add_library(pwresetd_options INTERFACE)
target_compile_options(pwresetd_options INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Wnon-virtual-dtor
  -Wold-style-cast -Wcast-align -Woverloaded-virtual -Wformat=2
  -Wimplicit-fallthrough -fstack-protector-strong
  $<$<NOT:$<CONFIG:Debug>>:-D_FORTIFY_SOURCE=2>)
if(PWRESETD_WERROR)
  target_compile_options(pwresetd_options INTERFACE -Werror)
endif()
# Boost headers warn under -Wconversion/-Wold-style-cast; they are included as system headers.
target_compile_definitions(pwresetd_options INTERFACE
  BOOST_ASIO_NO_DEPRECATED BOOST_JSON_NO_LIB)
if(PWRESETD_SANITIZE)
  target_compile_options(pwresetd_options INTERFACE
    -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(pwresetd_options INTERFACE -fsanitize=address,undefined)
endif()
if(PWRESETD_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "PWRESETD_FUZZ needs clang++ (libFuzzer): -DCMAKE_CXX_COMPILER=clang++")
  endif()
  if(NOT PWRESETD_TESTS)
    message(FATAL_ERROR "PWRESETD_FUZZ needs PWRESETD_TESTS (the targets live in tests/fuzz/)")
  endif()
  if(PWRESETD_SANITIZE)
    message(FATAL_ERROR "PWRESETD_FUZZ already turns on ASan+UBSan; leave PWRESETD_SANITIZE off")
  endif()
  # Every library gets coverage instrumentation; only the fuzz_* targets link libFuzzer's
  # main (tests/fuzz/CMakeLists.txt), so the replay_* and unit tests keep their own.
  target_compile_options(pwresetd_options INTERFACE
    -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
    -fno-sanitize-recover=all)
  target_link_options(pwresetd_options INTERFACE -fsanitize=address,undefined)
endif()
target_link_options(pwresetd_options INTERFACE -Wl,-z,relro,-z,now)

function(pwresetd_target_defaults target)
  target_link_libraries(${target} PRIVATE pwresetd_options)
endfunction()
