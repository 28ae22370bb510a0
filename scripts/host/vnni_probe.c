/* vpdpbusd throughput probe used by scripts/host/runG7-*.sh (seventh session, docs/kernels.md,
   "GEMM split"): 12 independent 512-bit vpdpbusd chains, then a dependent add chain for the
   clock. Usage: probe [iterations] [cpu to pin to]. Build: gcc -O2 -o probe vnni_probe.c
   (the binary is carried to the host as .devcarry/gemm/probe.xz). */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
int main(int argc,char**argv){
  long iters = argc>1? atol(argv[1]) : 50000000L;
  if(argc>2){ cpu_set_t m; CPU_ZERO(&m); CPU_SET(atoi(argv[2]),&m); if(sched_setaffinity(0,sizeof m,&m)) perror("affinity"); }
  struct timespec t0,t1; clock_gettime(CLOCK_MONOTONIC,&t0);
  __asm__ volatile(
   "vpxord %%zmm0,%%zmm0,%%zmm0\n vpternlogd $0xff,%%zmm15,%%zmm15,%%zmm15\n vmovdqa64 %%zmm15,%%zmm14\n"
   "mov %0,%%rcx\n1:\n"
   "vpdpbusd %%zmm14,%%zmm15,%%zmm0\n vpdpbusd %%zmm14,%%zmm15,%%zmm1\n vpdpbusd %%zmm14,%%zmm15,%%zmm2\n vpdpbusd %%zmm14,%%zmm15,%%zmm3\n"
   "vpdpbusd %%zmm14,%%zmm15,%%zmm4\n vpdpbusd %%zmm14,%%zmm15,%%zmm5\n vpdpbusd %%zmm14,%%zmm15,%%zmm6\n vpdpbusd %%zmm14,%%zmm15,%%zmm7\n"
   "vpdpbusd %%zmm14,%%zmm15,%%zmm8\n vpdpbusd %%zmm14,%%zmm15,%%zmm9\n vpdpbusd %%zmm14,%%zmm15,%%zmm10\n vpdpbusd %%zmm14,%%zmm15,%%zmm11\n"
   "dec %%rcx\n jnz 1b\n" :: "r"(iters) : "rcx","xmm0","xmm1","xmm2","xmm3","xmm4","xmm5","xmm6","xmm7","xmm8","xmm9","xmm10","xmm11","xmm14","xmm15");
  clock_gettime(CLOCK_MONOTONIC,&t1);
  double ns=(t1.tv_sec-t0.tv_sec)*1e9+(t1.tv_nsec-t0.tv_nsec);
  double v=iters*12/ns;
  long z=0; clock_gettime(CLOCK_MONOTONIC,&t0);
  __asm__ volatile("mov $100000000,%%rcx\n2:\n add %%rdx,%0\n add %%rdx,%0\n add %%rdx,%0\n add %%rdx,%0\n dec %%rcx\n jnz 2b\n" : "+r"(z) : "d"(1L) : "rcx");
  clock_gettime(CLOCK_MONOTONIC,&t1);
  double ns2=(t1.tv_sec-t0.tv_sec)*1e9+(t1.tv_nsec-t0.tv_nsec);
  printf("%.3f vpdpbusd/ns, clock ~%.2f GHz, %.2f per cycle\n", v, 4e8/ns2, v/(4e8/ns2));
}
