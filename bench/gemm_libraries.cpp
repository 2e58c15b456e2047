// Which single-threaded sgemm to use, measured: OpenBLAS (the kernels OPENBLAS_CORETYPE or
// OpenBLAS itself picks), BLIS 0.9 (dlopen'ed with RTLD_LOCAL, since it exports the same BLAS
// symbols as OpenBLAS) and oneDNN 2.6.3's dnnl_sgemm, on a large square product and on the
// shapes of the seed MLP, the GPT and the CNN. Prints GFLOP/s, medians of 5 batches. Not part of
// the build: BLIS and oneDNN are not lathe dependencies (docs/PERFORMANCE.md, "Performance, round
// 2", says why). To run it:
//   apt-get install libblis-dev libdnnl-dev
//   g++ -O2 -std=c++17 bench/gemm_libraries.cpp -o /tmp/gemm_libraries \
//     -I/usr/include/x86_64-linux-gnu/openblas-pthread -lopenblas -ldnnl -ldl -fopenmp
//   /tmp/gemm_libraries [THREADS]
#include <cblas.h>
#include <dlfcn.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>
typedef void (*blis_sgemm_t)(const char*, const char*, const int*, const int*, const int*,
                             const float*, const float*, const int*, const float*, const int*,
                             const float*, float*, const int*);
int main(int argc, char** argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  const char* bp = getenv("BLIS_PATH");
  void* h = dlopen(bp ? bp : "libblis.so.4", RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    printf("no blis\n");
    return 1;
  }
  auto blis = (blis_sgemm_t)dlsym(h, "sgemm_");
  auto blis_threads = (void (*)(long))dlsym(h, "bli_thread_set_num_threads");
  if (blis_threads) blis_threads(threads);
  openblas_set_num_threads(threads);
  omp_set_num_threads(threads);
  int shapes[][3] = {{2048, 2048, 2048}, {64, 128, 784},  {784, 128, 64},  {768, 384, 128},
                     {768, 128, 128},    {768, 512, 128}, {768, 128, 512}, {1000, 128, 784},
                     {6272, 32, 9},      {1568, 64, 288}};
  for (auto& s : shapes) {
    int m = s[0], n = s[1], k = s[2];
    std::vector<float> a(size_t(m) * k, 0.5f), b(size_t(k) * n, 0.25f), c(size_t(m) * n);
    double flop = 2.0 * m * n * k;
    auto bench = [&](auto fn) {
      std::vector<double> t;
      int reps = std::max(1, int(2e9 / flop));
      fn();
      for (int r = 0; r < 5; ++r) {
        auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < reps; ++i) fn();
        t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() /
                    reps);
      }
      std::sort(t.begin(), t.end());
      return flop / t[2] / 1e9;
    };
    float one = 1, zero = 0;
    double ob = bench([&] {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1, a.data(), k, b.data(), n,
                  0, c.data(), n);
    });
    // row-major C = A B  == col-major C^T = B^T A^T
    double bl = bench(
        [&] { blis("N", "N", &n, &m, &k, &one, b.data(), &n, a.data(), &k, &zero, c.data(), &n); });
    double dn = bench(
        [&] { dnnl_sgemm('N', 'N', m, n, k, 1.f, a.data(), k, b.data(), n, 0.f, c.data(), n); });
    printf("%5d %5d %5d  openblas %6.1f  blis %6.1f  dnnl %6.1f GFLOP/s\n", m, n, k, ob, bl, dn);
  }
}
