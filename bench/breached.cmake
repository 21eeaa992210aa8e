# breached_bench: compile throughput, size, open time, lookup latency and false-positive
# rate of the breached-password set (default 1e8 hashes; --hashes N).
add_executable(breached_bench ${CMAKE_CURRENT_SOURCE_DIR}/breached_bench.cpp)
target_link_libraries(breached_bench PRIVATE pwresetd_policy)
pwresetd_target_defaults(breached_bench)
