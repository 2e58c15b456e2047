// Tensors, autograd, a module and an optimizer, nothing more: linked against the core liblathe
// only, this program must need no protobuf, ONNX, MPI or HTTP library (tests/consumer/run.sh
// checks with ldd and nm).
#include <cstdio>

#include "lathe/nn.h"
#include "lathe/optim.h"

int main() {
  lathe::Generator generator(0);
  lathe::Linear layer(3, 2, true, generator);
  lathe::SGD optimizer(layer.named_parameters(), {.learning_rate = 0.1});
  const lathe::Tensor x = lathe::Tensor::randn({5, 3}, generator);
  lathe::Tensor loss = lathe::mean(lathe::relu(layer.forward(x)));
  loss.backward();
  optimizer.step();
  std::printf("tensors only: loss %.4f\n", loss.item());
  return 0;
}
