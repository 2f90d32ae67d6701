# asfunction.awk NAME LIB.lua SCRIPT.lua - prints a Redis 7 function
# library (FUNCTION LOAD) of the script that LIB.lua and SCRIPT.lua make
# (the two parts `lua2c.sh --parts` writes), as the function wq_NAME, for
# tests/bench/instr.sh to measure what a library made once would save
# against EVALSHA. LIB's top-level functions are made once, when the
# library loads; its other top-level statements (the clock, per-run
# caches) run at each call, as they do in a script run; SCRIPT is the
# function's body, KEYS and ARGV its arguments. An experiment, not what
# wakeq runs.
BEGIN { name = ARGV[1]; ARGV[1] = "" }
FILENAME == ARGV[3] { flush_state(); body = body $0 "\n"; next }
function flush_state() {
	if (st != "") { init = init st; st = "" }
}
/^(local function |[A-Za-z_][A-Za-z_0-9]* = function)/ {
	flush_state(); infn = 1; lib = lib $0 "\n"; next
}
infn { lib = lib $0 "\n"; if ($0 ~ /^end/) infn = 0; next }
/^local [A-Za-z_][A-Za-z_0-9, ]* = / {
	flush_state()
	names = $0; sub(/^local /, "", names); sub(/ = .*/, "", names)
	decl = decl "local " names "\n"
	st = substr($0, 7) "\n"; next
}
/^[ \t]/ && st != "" { st = st $0 "\n"; next }
/^local [A-Za-z_][A-Za-z_0-9, ]*$/ { flush_state(); decl = decl $0 "\n"; next }
{ flush_state(); body = body $0 "\n" }
END {
	flush_state()
	printf "#!lua name=wq_%s\nlocal KEYS, ARGV\n%s%s", name, decl, lib
	printf "redis.register_function('wq_%s', function(K, A)\nKEYS, ARGV = K, A\n%s%send)\n", name, init, body
}
