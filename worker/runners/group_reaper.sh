# One per worker process, in its own session, reading "+PGID" / "-PGID" lines
# on standard input: the process groups of the tasks that process is running.
# Only the worker process holds the write end of that pipe, so end of file
# means it died, however it died (kill -9, the OOM killer): every group still
# registered is killed, and a task never outlives its worker.
groups=' '
while read -r line; do
  case $line in
    +*) groups="$groups${line#+} " ;;
    -*) g=${line#-}
        case $groups in *" $g "*) groups="${groups%% "$g" *} ${groups#* "$g" }" ;; esac ;;
  esac
done
for g in $groups; do kill -9 -"$g" 2>/dev/null; done
