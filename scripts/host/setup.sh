# Sourced by the scripts/host/run*.sh benches, on the GPU machine's 16-core host (no Rust, no
# network), from the repository root. Unpacks into /tmp/w what the lead carries in $D (default
# .devcarry, git-ignored), made on the build machine:
#   gq.xz        strip + xz of target/release/gq
#   synth.xz     strip + xz of target/release/examples/synthetic_checkpoint
#   peers.tar.xz ~/.cache/gq-peers/build/bin (llama-bench, test-backend-ops and their libraries),
#                as peers/build/bin
# and sets GQ_PEERS, LD_LIBRARY_PATH and GQ (the gq binary); $W is the work folder.
D=${D:-$PWD/.devcarry}; W=/tmp/w; mkdir -p $W
[ -x $W/gq ] || { tar -C $W -xJf $D/peers.tar.xz; xz -dc $D/gq.xz > $W/gq; xz -dc $D/synth.xz > $W/synth; chmod +x $W/gq $W/synth; }
export GQ_PEERS=$W/peers LD_LIBRARY_PATH=$W/peers/build/bin GQ=$W/gq
