#!/bin/sh
# Runs its command, and runs it again whenever it exits, saying so: under `make run` one process
# ending would otherwise end all the others (honcho stops them all). Stopping `make run` stops this
# loop too (honcho signals the whole process group).
while :; do
    "$@"
    status=$?
    echo "keep-running: '$*' exited with status $status; starting it again in 5 s" >&2
    sleep 5
done
