# Sourced (after setup.sh) by the host scripts from the eighth session on: the helpers every
# visit repeated. `stamp TEXT` appends the seconds since sourcing to $OUT/times.txt; `probe`
# runs the `vpdpbusd` probe (.devcarry/probe.xz, the compiled scripts/host/vnni_probe.c) pinned
# to each of the 16 vCPUs at once and prints one line per vCPU; `slow FILE` counts the vCPUs of
# a probe output below 1.5 per cycle; `archive` tars everything in $OUT into one file (the
# device returns only a few), keeping summary.txt beside it. Also writes $OUT/load.txt.
T0=$SECONDS
stamp() { echo "[$((SECONDS-T0)) s] $*" >> $OUT/times.txt; }
probe() {
  local P=$W/probe; [ -x $P ] || { xz -dc .devcarry/probe.xz > $P; chmod +x $P; }
  for i in $(seq 0 15); do timeout 10 $P 30000000 $i > $W/o$i & done; wait
  for i in $(seq 0 15); do echo "cpu $i: $(cat $W/o$i)"; done
}
slow() { awk '{ if ($(NF-2) + 0 < 1.5) n++ } END { print n + 0 }' $1; }
archive() {
  (cd $OUT && tar czf /tmp/all.tar.gz . && mv /tmp/all.tar.gz . && find . -type f ! -name all.tar.gz ! -name summary.txt -delete)
}
{ date -u '+%F %T UTC'; uptime; lscpu | grep -E 'Model name|^CPU\(s\)|^Model:'; } > $OUT/load.txt 2>&1
