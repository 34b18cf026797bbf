# The first process of a task's process group, run as `sh -c "$this" harrier-task
# INTERPRETER... SCRIPT` with the read end of a pipe as standard input; only the
# worker process holds the write end. When the worker dies, however it dies
# (kill -9, the OOM killer), the pipe reaches end of file and the watcher kills
# the whole group: a task never outlives its worker, a re-run never overlaps it.
exec 3<&0 0</dev/null
( read -r _ <&3; kill -s KILL 0 ) >/dev/null 2>&1 &
watcher=$!
exec 3<&-
# A kill from the worker (SIGTERM to the group) reaches the task itself; this
# shell waits for it to end (a trapped signal is reset in the task).
trap : TERM INT
"$@"
status=$?
kill -s KILL "$watcher" 2>/dev/null
exit "$status"
