# Sourced (after setup.sh) by the host scripts from the eighth session on: the helpers every
# visit repeated. `stamp TEXT` appends the seconds since sourcing to $OUT/times.txt; `probe`
# runs the `vpdpbusd` probe (.devcarry/probe.xz, the compiled scripts/host/vnni_probe.c) pinned
# to each of the 16 vCPUs at once and prints one line per vCPU; `slow FILE` counts the vCPUs of
# a probe output below 1.5 per cycle; `archive` tars everything in $OUT into one file (the
# device returns only a few), keeping summary.txt beside it. Also writes $OUT/load.txt.
# From the ninth session: `qrun NAME BIN THREADS TYPE ROUND` times one `gq quantize` of $W/e2b
# into $OUT/quant.txt; `qratios` writes $OUT/ratios.txt, TQT4_5_M / Q4_K_M user and wall time
# per binary, thread count and round; `ktests` runs the kernel test binaries of
# .devcarry/kt/kt.tar.xz (cargo test -p gq-kernels --release --no-run, stripped) with the AMX
# paths required, one summary line per binary into $OUT/ktests.txt.
T0=$SECONDS
stamp() { echo "[$((SECONDS-T0)) s] $*" >> $OUT/times.txt; }
probe() {
  local P=$W/probe; [ -x $P ] || { xz -dc .devcarry/probe.xz > $P; chmod +x $P; }
  for i in $(seq 0 15); do timeout 10 $P 30000000 $i > $W/o$i & done; wait
  for i in $(seq 0 15); do echo "cpu $i: $(cat $W/o$i)"; done
}
qrun() { /usr/bin/time -f "round $5 threads $3 $1 $4 %U user %S sys %e wall" -a -o $OUT/quant.txt \
    timeout 60 $2 quantize $W/e2b -t $4 --threads $3 -q -o $W/out-$1-$4.gguf 2>>$OUT/q.log; }
qratios() {
  awk '{ k=$2" "$4" "$5; u[k" "$6]=$7; w[k" "$6]=$11 }
       END { for (k in u) if (k ~ / Q4_K_M$/) { b=substr(k,1,length(k)-7);
         printf "round %s: TQ/Q4K user %.3f wall %.3f\n", b, u[b" TQT4_5_M"]/u[k], w[b" TQT4_5_M"]/w[k] } }' \
      $OUT/quant.txt | sort -k4,4n -k2,2n > $OUT/ratios.txt
}
ktests() {
  local K=$W/kt; mkdir -p $K; tar -C $K -xJf .devcarry/kt/kt.tar.xz
  for t in gq_kernels amx pool_stress quant_simd_equality simd_vs_scalar tq_simd_vs_scalar; do
    echo "$t: $(cd kernels && GQ_REQUIRE_ISAS=avx2,avx512,amx timeout 100 $K/$t 2>&1 | grep -E '^test result|FAILED|panicked' | tr '\n' ' ')"
  done > $OUT/ktests.txt 2>&1
}
slow() { awk '{ if ($(NF-2) + 0 < 1.5) n++ } END { print n + 0 }' $1; }
archive() {
  (cd $OUT && tar czf /tmp/all.tar.gz . && mv /tmp/all.tar.gz . && find . -type f ! -name all.tar.gz ! -name summary.txt -delete)
}
{ date -u '+%F %T UTC'; uptime; lscpu | grep -E 'Model name|^CPU\(s\)|^Model:'; } > $OUT/load.txt 2>&1
