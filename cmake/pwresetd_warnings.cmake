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
target_link_options(pwresetd_options INTERFACE -Wl,-z,relro,-z,now)

function(pwresetd_target_defaults target)
  target_link_libraries(${target} PRIVATE pwresetd_options)
endfunction()
