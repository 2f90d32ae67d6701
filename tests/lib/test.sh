# test.sh - how every integration test begins: sourced first, it loads
# servers.sh, tap.sh and wakeq.sh and makes the test's temp folder $T
# (removed on exit, with the servers the test started stopped by pid).
_lib=$(dirname "${BASH_SOURCE[0]}")
. "$_lib/servers.sh"
. "$_lib/tap.sh"
. "$_lib/wakeq.sh"
t_tmpdir
