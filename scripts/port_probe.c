/* Throughput of the instructions the TQ decode is made of, on this core (docs/turboquant.md
 * §16, tenth session). Build and run: gcc -O1 -mavx512f -mavx512bw -mavx512vbmi -mavx512vnni
 * -o /tmp/port_probe scripts/port_probe.c && /tmp/port_probe
 * Each line times 8 independent copies of an instruction (or a mix) in a loop and prints core
 * cycles per loop iteration, the clock taken from a dependent 512-bit vpaddd chain (1 cycle
 * each). */
#include <stdio.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Short runs, best of many: a run that a time slice of another process interrupts is dropped
 * (on a shared 2-vCPU machine long runs measure the share of the CPU, not the core). */
#define N 20000L
#define REPS 300
#define CLOBBER "rcx", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", \
    "xmm9", "xmm10", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "memory"
#define RUN(name, body)                                                                         \
  do {                                                                                          \
    double b = 1e9;                                                                             \
    for (int r = 0; r < REPS; r++) {                                                            \
      double t0 = now();                                                                        \
      __asm__ volatile("mov %0, %%rcx\n1:\n" body "dec %%rcx\n jnz 1b" ::"r"(N) : CLOBBER);    \
      double t = now() - t0;                                                                    \
      if (t < b) b = t;                                                                         \
    }                                                                                           \
    printf("%-34s %6.2f cycles\n", name, b * ghz * 1e9 / N);                                   \
  } while (0)

#define X8(i) i(0) i(1) i(2) i(3) i(4) i(5) i(6) i(7)
#define PERMB(r) "vpermb %%zmm8, %%zmm9, %%zmm" #r "\n"
#define PERMI2B(r) "vmovdqa64 %%zmm9, %%zmm" #r "\n vpermi2b %%zmm10, %%zmm8, %%zmm" #r "\n"
#define COPY(r) "vmovdqa64 %%zmm9, %%zmm" #r "\n"
#define ADDB(r) "vpaddb %%zmm8, %%zmm9, %%zmm" #r "\n"
#define ADDB2(r) "vpaddb %%zmm8, %%zmm9, %%zmm1" #r "\n"
#define TESTMB(r) "vptestmb %%zmm8, %%zmm9, %%k" #r "\n"
#define MOVB2M(r) "vpmovb2m %%zmm8, %%k" #r "\n"
#define DPBUSD(r) "vpdpbusd %%zmm8, %%zmm9, %%zmm" #r "\n"
#define MSHIFT(r) "vpmultishiftqb %%zmm8, %%zmm9, %%zmm" #r "\n"
#define GF2P8(r) "vgf2p8affineqb $0, %%zmm8, %%zmm9, %%zmm" #r "\n"

int main(void) {
  double best = 0;
  for (int r = 0; r < REPS; r++) {
    double t0 = now();
    __asm__ volatile("mov %0, %%rcx\n1:\n vpaddd %%zmm1, %%zmm0, %%zmm0\n vpaddd %%zmm1, %%zmm0, %%zmm0\n"
                     " vpaddd %%zmm1, %%zmm0, %%zmm0\n vpaddd %%zmm1, %%zmm0, %%zmm0\n dec %%rcx\n jnz 1b"
                     ::"r"(N * 4) : "rcx", "xmm0", "xmm1");
    double g = 4.0 * N * 4 / (now() - t0) / 1e9;
    if (g > best) best = g;
  }
  double ghz = best;
  printf("512-bit clock (dependent vpaddd chain): %.2f GHz\n", ghz);
  RUN("8 vpermb", X8(PERMB));
  RUN("8 vpermi2b (+ index copy)", X8(PERMI2B));
  RUN("8 vmovdqa64 reg copies", X8(COPY));
  RUN("8 vpaddb", X8(ADDB));
  RUN("8 vptestmb (k1..k7)", TESTMB(1) TESTMB(2) TESTMB(3) TESTMB(4) TESTMB(5) TESTMB(6) TESTMB(7) TESTMB(1));
  RUN("8 vpmovb2m", MOVB2M(1) MOVB2M(2) MOVB2M(3) MOVB2M(4) MOVB2M(5) MOVB2M(6) MOVB2M(7) MOVB2M(1));
  RUN("8 vpdpbusd", X8(DPBUSD));
  RUN("8 vpmultishiftqb", X8(MSHIFT));
  RUN("8 vgf2p8affineqb", X8(GF2P8));
  RUN("8 vpermi2b + 8 vptestmb", X8(PERMI2B) TESTMB(1) TESTMB(2) TESTMB(3) TESTMB(4) TESTMB(5) TESTMB(6) TESTMB(7) TESTMB(1));
  RUN("8 vpermi2b + 16 vpmovb2m", X8(PERMI2B) MOVB2M(1) MOVB2M(2) MOVB2M(3) MOVB2M(4) MOVB2M(5) MOVB2M(6) MOVB2M(7) MOVB2M(1) MOVB2M(1) MOVB2M(2) MOVB2M(3) MOVB2M(4) MOVB2M(5) MOVB2M(6) MOVB2M(7) MOVB2M(1));
  RUN("8 vpermb + 8 vpaddb", X8(PERMB) X8(ADDB2));
  return 0;
}
