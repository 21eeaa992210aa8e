# policy_bench: load time, memory and check() latency of the password policy with a
# 1,000,000-term banned words list (--terms N, --checks N).
add_executable(policy_bench ${CMAKE_CURRENT_SOURCE_DIR}/policy_bench.cpp)
target_link_libraries(policy_bench PRIVATE pwresetd_policy)
pwresetd_target_defaults(policy_bench)
