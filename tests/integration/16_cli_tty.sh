#!/usr/bin/env bash
# 16_cli_tty.sh - what the CLI shows in a real terminal: tmux (a server of
# our own, on a socket in $T) runs wakeq in a 120x30 pane, capture-pane
# reads the screen. The table of jobs and of dead letters, the progress
# bar of status --watch (redrawn in place while a job reports progress
# through the real queue scripts), the bar of dead retry --all, the
# redraw of stats --watch, Ctrl-C, and the completion of bash and zsh as
# typed with Tab. Every wait is bounded.
set -u
. "$(dirname "$0")/../lib/test.sh"

if ! command -v tmux >/dev/null 2>&1; then
	not_ok "tmux is needed to drive a terminal (container/deps.sh install test)"
	exit 1
fi
start_redis

SOCK=$T/tmux.sock
tm() { tmux -S "$SOCK" "$@"; }
on_exit "tmux -S '$SOCK' kill-server"
n=0
# run CMD: a new window of 120x30 running CMD in bash, then "EXIT=rc";
# sets W to its name
run() {
	n=$((n + 1))
	W=w$n
	if [ "$n" = 1 ]; then
		tm new-session -d -s cli -n "$W" -x 120 -y 30 \
			"env -i PATH='$BIN:/usr/bin:/bin' TERM=xterm-256color REDIS_URL='$REDIS_URL' bash --norc --noprofile"
	else
		tm new-window -d -t cli -n "$W" \
			"env -i PATH='$BIN:/usr/bin:/bin' TERM=xterm-256color REDIS_URL='$REDIS_URL' bash --norc --noprofile"
	fi
	wait_until 5 screen >/dev/null 2>&1
	tm send-keys -t "cli:$W" "PS1='$ '; clear" Enter
	if [ -n "${1:-}" ]; then
		tm send-keys -t "cli:$W" "$1; echo EXIT=\$?" Enter
	fi
}
# the screen, wrapped lines joined
screen() { tm capture-pane -p -J -t "cli:$W"; }
has() { screen | grep -Eq -- "$1"; }
# shows SECONDS REGEX: waits until the screen has a line matching REGEX
shows() { wait_until "$1" has "$2"; }

# ---- the table of jobs ---------------------------------------------------------
for i in 1 2 3; do wq enqueue noop --queue tq 2>/dev/null; done >"$T/ids"
wq enqueue sleep --queue tq --payload '{"ms":1}' 2>/dev/null >>"$T/ids"
run "wakeq jobs --queue tq"
check "jobs on a terminal: a table" shows 5 '^ID +QUEUE +TYPE +STATE +ATTEMPTS +PROGRESS +AGE +STAGE/ERROR'
check "its rows" shows 5 "^$(tail -1 "$T/ids") +tq +sleep +queued +0/3 +0% +[0-9]+s"
expect_eq "one row per job" 4 "$(screen | grep -Ec '^[0-9a-f-]{36} +tq ')"
check "and not JSON" sh -c "! tmux -S '$SOCK' capture-pane -p -J -t 'cli:$W' | grep -q '^{'"
check "jobs exits 0" shows 5 '^EXIT=0'

# ---- the dead letters, a long error cut to the terminal's width ----------------
long=$(printf 'x%.0s' $(seq 1 300))
wq enqueue fail --queue td --payload "{\"message\":\"$long\"}" 2>/dev/null >/dev/null
for i in $(seq 1 40); do echo "{\"message\":\"nope $i\"}"; done | while read -r p; do
	wq enqueue fail --queue td --payload "$p" 2>/dev/null
done >/dev/null
IDLE_TIMEOUT=0.3 QUEUES=td wq drain >/dev/null 2>&1
run "wakeq dead list --queue td --limit 5"
check "dead list on a terminal: id, type, attempts, age, error" shows 5 '^ID +TYPE +ATTEMPTS +AGE +ERROR$'
check "a row: fail, 1/3, its age and error" shows 5 '^[0-9a-f-]{36} +fail +1/3 +[0-9]+s +nope [0-9]+$'
shows 5 '^EXIT=0'
run "wakeq dead list --queue td --limit 100 | grep xxx"
# through a pipe it is JSON, the whole error; on the terminal it is cut
check "not on a terminal the whole error is there (JSON)" shows 5 "\"error\":\"$long\""
run "wakeq dead list --queue td --limit 100"
shows 5 '^EXIT=0'
row=$(screen | grep -E '^[0-9a-f-]{36} +fail +1/3 +[0-9]+s +xxx')
check "on the terminal a long error is cut to the width (${#row} columns)" test "${#row}" -le 120 -a "${#row}" -ge 100
check "and ends with ..." contains "$row" "xx..."

# ---- dead retry --all: a progress bar on a terminal ----------------------------------
run "wakeq dead retry --all --queue td"
check "dead retry --all draws a bar to the end" shows 10 '^retrying \[=+\] 41/41$'
check "then says what it did" shows 10 "^retried 41 dead jobs of 'td'$"
expect_eq "and every dead job is queued again" 41 "$(count_status td queued)"

# ---- status --watch: the progress bar, redrawn in place ------------------------------
id=$(wq enqueue noop --queue tw 2>/dev/null)
run "wakeq status $id --watch"
check "the watch names the job" shows 5 "^$id: noop on 'tw'"
check "and shows it queued" shows 5 '^queued +\[ *> *\] +0%'
"$BIN/tests/tools/qdrive" "$REDIS_URL" tw run 4 700 >"$T/qdrive.out" &
qd=$!
on_exit "kill_wait $qd"
check "a progress bar while the job runs, with its stage" \
	shows 10 '^active +\[=+> +\] +(20|40|60)% +attempt 1/3 +[0-9]+s +step-[123]$'
mid=$(screen | grep -E '^active ')
check "the bar moves on ($mid)" shows 10 '^active +\[=+> *\] +80% .*step-4$'
check "it ends at done, 100%" shows 10 '^done +\[=+\] 100% +attempt 1/3'
check "with the result" shows 5 '^done in [0-9.]+s: \{"ok":true\}$'
check "exit 0" shows 5 '^EXIT=0$'
expect_eq "one bar line: redrawn in place, not scrolled" 1 "$(screen | grep -c '\[[= >]*\]')"
wait "$qd"

# outcome by exit code on the terminal too; Ctrl-C stops a watch
fid=$(wq enqueue fail --queue tw --payload '{"message":"on purpose"}' 2>/dev/null)
run "wakeq status $fid --watch"
shows 5 '^queued '
IDLE_TIMEOUT=0.3 QUEUES=tw wq drain >/dev/null 2>&1
check "a failed job: the error" shows 10 '^failed after 1 attempt: on purpose$'
check "and exit 5" shows 5 '^EXIT=5$'
sid=$(wq enqueue noop --queue tw --delay 600 2>/dev/null)
run "wakeq status $sid --watch"
shows 5 '^scheduled '
tm send-keys -t "cli:$W" C-c
check "Ctrl-C stops the watch: exit 130" shows 5 '^EXIT=130 *$'

# ---- stats --watch redraws the screen ------------------------------------------------
run "wakeq stats --watch --interval 0.2 --queue td"
check "stats --watch shows the table" shows 5 '^td +41 '
sleep 1
expect_eq "after several rounds one table on the screen (redrawn, not scrolled)" 1 \
	"$(screen | grep -c '^every 0.2s: ')"
tm send-keys -t "cli:$W" C-c
check "Ctrl-C ends it: exit 0" shows 5 'EXIT=0 *$'

# ---- completion as typed, with Tab ------------------------------------------------------
run "source <(wakeq completion bash); clear"
shows 5 '^\$ *$'
tm send-keys -t "cli:$W" 'wakeq dead re' Tab
check "bash: dead re<Tab> is dead retry" shows 5 '^\$ wakeq dead retry *$'
tm send-keys -t "cli:$W" -l -- '--a'
tm send-keys -t "cli:$W" Tab
check "bash: --a<Tab> is --all" shows 5 '^\$ wakeq dead retry --all *$'
tm send-keys -t "cli:$W" C-u 'wakeq jobs --state fa' Tab
check "bash: --state fa<Tab> is failed" shows 5 '^\$ wakeq jobs --state failed *$'
if command -v zsh >/dev/null 2>&1; then
	n=$((n + 1))
	W=w$n
	tm new-window -d -t cli -n "$W" \
		"env -i PATH='$BIN:/usr/bin:/bin' TERM=xterm-256color HOME='$T' zsh -f"
	wait_until 5 screen >/dev/null 2>&1
	tm send-keys -t "cli:$W" "PS1='%% '; autoload -U compinit && compinit -u -d '$T/zcomp' && source <(wakeq completion zsh); clear" Enter
	shows 5 '^% *$'
	tm send-keys -t "cli:$W" 'wakeq dead re' Tab
	check "zsh: dead re<Tab> is dead retry" shows 5 '^% wakeq dead retry *$'
	tm send-keys -t "cli:$W" C-u 'wakeq jobs --state fa' Tab
	check "zsh: --state fa<Tab> is failed" shows 5 '^% wakeq jobs --state failed *$'
	tm send-keys -t "cli:$W" C-u 'wakeq enqueue media.pr' Tab
	check "zsh: a job type" shows 5 '^% wakeq enqueue media.probe *$'
else
	not_ok "zsh is needed to check the zsh completion (container/deps.sh install test)"
fi
exit 0
