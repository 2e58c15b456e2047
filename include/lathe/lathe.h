#pragma once
// Everything in one include.
#include "lathe/autograd.h"
#include "lathe/error.h"
#include "lathe/ops.h"
#include "lathe/parallel.h"
#include "lathe/random.h"
#include "lathe/tensor.h"
#include "lathe/version.h"
